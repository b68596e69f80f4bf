// SPDX-License-Identifier: BSD-3-Clause
// The intrusive red-black tree: random inserts and erases against
// std::multiset, red-black invariants after every step, and augmented
// summaries (subtree size and maximum) exact after every step.
#include "vfdma_test.h"

#include <set>
#include <vector>

extern "C" {
#include "util/rbtree.h"
}

namespace
{
struct Item {
	vfd_rb_node rb;
	uint64_t key;
	uint64_t val;
	uint64_t sub_max; // augmented: largest val in the subtree
	uint64_t sub_n;	  // augmented: nodes in the subtree
};

Item *item(vfd_rb_node *n)
{
	return n ? vfd_container_of(n, Item, rb) : nullptr;
}

void update(vfd_rb_node *n)
{
	Item *it = item(n);
	it->sub_max = it->val;
	it->sub_n = 1;
	for (vfd_rb_node *c : {n->left, n->right}) {
		if (!c)
			continue;
		it->sub_max = std::max(it->sub_max, item(c)->sub_max);
		it->sub_n += item(c)->sub_n;
	}
}

void insert(vfd_rb_root *root, Item *it)
{
	vfd_rb_node **link = &root->node, *parent = nullptr;
	while (*link) {
		parent = *link;
		link = it->key < item(parent)->key ? &parent->left : &parent->right;
	}
	vfd_rb_link(&it->rb, parent, link);
	vfd_rb_insert(root, &it->rb);
}

// Recompute summaries from scratch and compare with the stored ones.
bool summaries_exact(vfd_rb_node *n, uint64_t *max, uint64_t *cnt)
{
	if (!n) {
		*max = 0;
		*cnt = 0;
		return true;
	}
	uint64_t lm = 0, lc = 0, rm = 0, rc = 0;
	bool ok = summaries_exact(n->left, &lm, &lc) && summaries_exact(n->right, &rm, &rc);
	*max = std::max({item(n)->val, lm, rm});
	*cnt = 1 + lc + rc;
	return ok && *max == item(n)->sub_max && *cnt == item(n)->sub_n;
}
} // namespace

TEST(RbTree, EmptyTree)
{
	vfd_rb_root root = {nullptr, nullptr};
	EXPECT_EQ(vfd_rb_first(&root), nullptr);
	EXPECT_EQ(vfd_rb_last(&root), nullptr);
	EXPECT_EQ(vfd_rb_validate(&root), 1);
}

TEST(RbTree, RandomAgainstMultiset)
{
	uint64_t seed = vfdma_test_seed("RbTree.RandomAgainstMultiset");
	std::mt19937_64 rng(seed);
	const int n = 3000;
	std::vector<Item> items(n);
	std::vector<bool> in(n, false);
	std::multiset<uint64_t> model;
	vfd_rb_root root = {nullptr, update};
	size_t steps = (size_t)(60000 * vfdma_test_scale());

	for (size_t step = 0; step < steps; step++) {
		int i = (int)(rng() % n);
		if (!in[i]) {
			items[i].key = rng() % 500; // many equal keys
			items[i].val = rng() % 100000;
			insert(&root, &items[i]);
			model.insert(items[i].key);
		} else {
			vfd_rb_erase(&root, &items[i].rb);
			model.erase(model.find(items[i].key));
		}
		in[i] = !in[i];
		// Full checks are O(n): do them often, not always.
		if (step % 97 == 0 || step < 2000) {
			ASSERT_GT(vfd_rb_validate(&root), 0) << "step " << step;
			uint64_t mx, cnt;
			ASSERT_TRUE(summaries_exact(root.node, &mx, &cnt)) << "step " << step;
			ASSERT_EQ(cnt, model.size());
			// In-order walks both ways match the model.
			auto it = model.begin();
			for (vfd_rb_node *x = vfd_rb_first(&root); x; x = vfd_rb_next(x), ++it)
				ASSERT_EQ(item(x)->key, *it);
			ASSERT_EQ(it, model.end());
			auto rit = model.rbegin();
			for (vfd_rb_node *x = vfd_rb_last(&root); x; x = vfd_rb_prev(x), ++rit)
				ASSERT_EQ(item(x)->key, *rit);
		}
	}
}

TEST(RbTree, HeightIsLogarithmic)
{
	// Sorted inserts are the worst case for an unbalanced tree.
	const int n = 1 << 16;
	std::vector<Item> items(n);
	vfd_rb_root root = {nullptr, nullptr};
	for (int i = 0; i < n; i++) {
		items[i].key = i;
		insert(&root, &items[i]);
	}
	int bh = vfd_rb_validate(&root);
	ASSERT_GT(bh, 0);
	// Height <= 2 * black height <= 2 * log2(n + 1).
	EXPECT_LE(bh, 17);
}
