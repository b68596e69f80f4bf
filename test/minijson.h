/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * minijson.h - a strict little JSON parser for tests that check a
 * program's JSON output (vfdmactl): the unit tests (C++) and the VM tier's
 * guest programs (C, static, no libraries) both include it.
 *
 * Strict on purpose: trailing commas, unescaped control characters in
 * strings, bad escapes, leading zeros and trailing garbage are errors, so
 * that a test that parses output also proves it is valid JSON (RFC 8259).
 * Numbers are kept as doubles and as their text.
 *
 *   char err[128];
 *   struct mj *v = mj_parse(text, err, sizeof(err));
 *   const char *s = mj_str(mj_get(mj_at(mj_get(v, "devices"), 0), "bdf"));
 *   mj_free(v);
 */
#ifndef VFDMA_MINIJSON_H
#define VFDMA_MINIJSON_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum mj_type { MJ_NULL, MJ_BOOL, MJ_NUM, MJ_STR, MJ_ARR, MJ_OBJ };

struct mj {
	enum mj_type type;
	bool b;
	double num;
	char *str;        /* MJ_STR: the decoded string; MJ_NUM: the number's text */
	size_t n;         /* MJ_ARR, MJ_OBJ: number of items */
	struct mj *items; /* MJ_ARR, MJ_OBJ */
	char **keys;      /* MJ_OBJ: items[i] is the value of keys[i] */
};

struct mj_parser {
	const char *p;
	char *err;
	size_t errlen;
	int depth;
};

static inline bool mj_fail(struct mj_parser *ps, const char *what)
{
	if (ps->err && !ps->err[0])
		snprintf(ps->err, ps->errlen, "%s at '%.20s'", what, ps->p);
	return false;
}

static inline void mj_ws(struct mj_parser *ps)
{
	while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
		ps->p++;
}

static inline void mj_clear(struct mj *v)
{
	for (size_t i = 0; i < v->n; i++) {
		mj_clear(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	memset(v, 0, sizeof(*v));
}

static inline int mj_hex4(const char *s)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* A string literal at ps->p, decoded into a new buffer. */
static inline bool mj_string(struct mj_parser *ps, char **out)
{
	if (*ps->p != '"')
		return mj_fail(ps, "expected a string");
	const char *s = ++ps->p;
	size_t cap = strlen(s) + 1, n = 0; /* decoding never grows the text */
	char *buf = (char *)malloc(cap);
	if (!buf)
		return mj_fail(ps, "out of memory");
	for (;;) {
		unsigned char c = (unsigned char)*ps->p;
		if (c == '"')
			break;
		if (c < 0x20) {
			free(buf);
			return mj_fail(ps, c ? "control character in a string" : "unterminated string");
		}
		ps->p++;
		if (c != '\\') {
			buf[n++] = (char)c;
			continue;
		}
		char e = *ps->p;
		if (!e) {
			free(buf);
			return mj_fail(ps, "unterminated string");
		}
		ps->p++;
		const char *simple = strchr("\"\\/bfnrt", e);
		if (simple) {
			buf[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
		} else if (e == 'u') {
			int cp = mj_hex4(ps->p);
			if (cp < 0) {
				free(buf);
				return mj_fail(ps, "bad \\u escape");
			}
			ps->p += 4;
			if (cp >= 0xd800 && cp < 0xdc00 && ps->p[0] == '\\' && ps->p[1] == 'u') {
				int lo = mj_hex4(ps->p + 2);
				if (lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					ps->p += 6;
				}
			}
			/* UTF-8; at most 4 bytes for the 6+ characters consumed */
			if (cp < 0x80) {
				buf[n++] = (char)cp;
			} else if (cp < 0x800) {
				buf[n++] = (char)(0xc0 | cp >> 6);
				buf[n++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				buf[n++] = (char)(0xe0 | cp >> 12);
				buf[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
				buf[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				buf[n++] = (char)(0xf0 | cp >> 18);
				buf[n++] = (char)(0x80 | (cp >> 12 & 0x3f));
				buf[n++] = (char)(0x80 | (cp >> 6 & 0x3f));
				buf[n++] = (char)(0x80 | (cp & 0x3f));
			}
		} else {
			free(buf);
			return mj_fail(ps, "bad escape");
		}
	}
	ps->p++;
	buf[n] = '\0';
	*out = buf;
	return true;
}

static inline bool mj_value(struct mj_parser *ps, struct mj *v);

/* Append a zeroed item (and key) to an array or object. */
static inline struct mj *mj_push(struct mj *v, char *key)
{
	struct mj *items = (struct mj *)realloc(v->items, (v->n + 1) * sizeof(*items));
	if (!items)
		return NULL;
	v->items = items;
	if (v->type == MJ_OBJ) {
		char **keys = (char **)realloc(v->keys, (v->n + 1) * sizeof(*keys));
		if (!keys)
			return NULL;
		v->keys = keys;
		keys[v->n] = key;
	}
	memset(&items[v->n], 0, sizeof(items[0]));
	return &items[v->n++];
}

static inline bool mj_container(struct mj_parser *ps, struct mj *v, char close)
{
	v->type = close == '}' ? MJ_OBJ : MJ_ARR;
	ps->p++;
	mj_ws(ps);
	if (*ps->p == close) {
		ps->p++;
		return true;
	}
	for (;;) {
		char *key = NULL;
		mj_ws(ps);
		if (v->type == MJ_OBJ) {
			if (!mj_string(ps, &key))
				return false;
			mj_ws(ps);
			if (*ps->p != ':') {
				free(key);
				return mj_fail(ps, "expected ':'");
			}
			ps->p++;
		}
		struct mj *item = mj_push(v, key);
		if (!item) {
			free(key);
			return mj_fail(ps, "out of memory");
		}
		if (!mj_value(ps, item))
			return false;
		mj_ws(ps);
		if (*ps->p == close) {
			ps->p++;
			return true;
		}
		if (*ps->p != ',')
			return mj_fail(ps, "expected ',' or the end of the container");
		ps->p++;
	}
}

static inline bool mj_number(struct mj_parser *ps, struct mj *v)
{
	const char *s = ps->p, *q = s;
	if (*q == '-')
		q++;
	if (*q == '0')
		q++;
	else if (*q >= '1' && *q <= '9')
		while (*q >= '0' && *q <= '9')
			q++;
	else
		return mj_fail(ps, "bad value");
	if (*q == '.') {
		if (!(*++q >= '0' && *q <= '9'))
			return mj_fail(ps, "bad fraction");
		while (*q >= '0' && *q <= '9')
			q++;
	}
	if (*q == 'e' || *q == 'E') {
		q++;
		if (*q == '+' || *q == '-')
			q++;
		if (!(*q >= '0' && *q <= '9'))
			return mj_fail(ps, "bad exponent");
		while (*q >= '0' && *q <= '9')
			q++;
	}
	v->type = MJ_NUM;
	v->num = strtod(s, NULL);
	v->str = (char *)malloc((size_t)(q - s) + 1);
	if (!v->str)
		return mj_fail(ps, "out of memory");
	memcpy(v->str, s, (size_t)(q - s));
	v->str[q - s] = '\0';
	ps->p = q;
	return true;
}

static inline bool mj_value(struct mj_parser *ps, struct mj *v)
{
	mj_ws(ps);
	if (++ps->depth > 64)
		return mj_fail(ps, "nested too deeply");
	bool ok;
	switch (*ps->p) {
	case '{': ok = mj_container(ps, v, '}'); break;
	case '[': ok = mj_container(ps, v, ']'); break;
	case '"':
		v->type = MJ_STR;
		ok = mj_string(ps, &v->str);
		break;
	default:
		if (!strncmp(ps->p, "null", 4)) {
			v->type = MJ_NULL;
			ps->p += 4;
			ok = true;
		} else if (!strncmp(ps->p, "true", 4) || !strncmp(ps->p, "false", 5)) {
			v->type = MJ_BOOL;
			v->b = *ps->p == 't';
			ps->p += v->b ? 4 : 5;
			ok = true;
		} else {
			ok = mj_number(ps, v);
		}
	}
	ps->depth--;
	return ok;
}

/* Parse a whole document; NULL on error, with the reason in @err. */
static inline struct mj *mj_parse(const char *text, char *err, size_t errlen)
{
	struct mj_parser ps = { text, err, errlen, 0 };
	struct mj *v = (struct mj *)calloc(1, sizeof(*v));
	if (err && errlen)
		err[0] = '\0';
	if (!v)
		return NULL;
	bool ok = mj_value(&ps, v);
	if (ok) {
		mj_ws(&ps);
		if (*ps.p)
			ok = mj_fail(&ps, "trailing characters");
	}
	if (!ok) {
		mj_clear(v);
		free(v);
		return NULL;
	}
	return v;
}

static inline void mj_free(struct mj *v)
{
	if (v) {
		mj_clear(v);
		free(v);
	}
}

/* The member @key of an object, or NULL (also when @obj is NULL). */
static inline const struct mj *mj_get(const struct mj *obj, const char *key)
{
	if (!obj || obj->type != MJ_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (!strcmp(obj->keys[i], key))
			return &obj->items[i];
	return NULL;
}

/* Item @i of an array, or NULL. */
static inline const struct mj *mj_at(const struct mj *arr, size_t i)
{
	return arr && arr->type == MJ_ARR && i < arr->n ? &arr->items[i] : NULL;
}

/* Number of items of an array or object; 0 for anything else. */
static inline size_t mj_len(const struct mj *v)
{
	return v && (v->type == MJ_ARR || v->type == MJ_OBJ) ? v->n : 0;
}

/* The string, or NULL if @v is not a string. */
static inline const char *mj_str(const struct mj *v)
{
	return v && v->type == MJ_STR ? v->str : NULL;
}

/* The number, or @def if @v is not a number. */
static inline double mj_num(const struct mj *v, double def)
{
	return v && v->type == MJ_NUM ? v->num : def;
}

static inline bool mj_is_null(const struct mj *v)
{
	return v && v->type == MJ_NULL;
}

/* true/false, or @def if @v is not a boolean. */
static inline bool mj_bool(const struct mj *v, bool def)
{
	return v && v->type == MJ_BOOL ? v->b : def;
}

/* Whether the array @arr holds the string @s. */
static inline bool mj_has_str(const struct mj *arr, const char *s)
{
	for (size_t i = 0; i < mj_len(arr); i++)
		if (mj_str(mj_at(arr, i)) && !strcmp(mj_str(mj_at(arr, i)), s))
			return true;
	return false;
}

#endif /* VFDMA_MINIJSON_H */
