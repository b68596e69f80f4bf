/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Completion status in words: the Status Code Type and Status Code of a
 * completion's Status Field, named as in the NVMe Base Specification
 * (figures 100-104) and the NVM Command Set Specification.  Only the codes
 * a host is likely to meet; others print as numbers.
 */
#include <stdio.h>

#include "nvme.h"

struct sc_name {
	uint8_t sc;
	const char *name;
};

static const struct sc_name generic[] = {
	{0x00, "Successful Completion"},
	{0x01, "Invalid Command Opcode"},
	{0x02, "Invalid Field in Command"},
	{0x03, "Command ID Conflict"},
	{0x04, "Data Transfer Error"},
	{0x05, "Commands Aborted due to Power Loss Notification"},
	{0x06, "Internal Error"},
	{0x07, "Command Abort Requested"},
	{0x08, "Command Aborted due to SQ Deletion"},
	{0x0b, "Invalid Namespace or Format"},
	{0x0c, "Command Sequence Error"},
	{0x13, "PRP Offset Invalid"},
	{0x15, "Operation Denied"},
	{0x80, "LBA Out of Range"},
	{0x81, "Capacity Exceeded"},
	{0x82, "Namespace Not Ready"},
	{0x83, "Reservation Conflict"},
	{0x84, "Format In Progress"},
	{0, NULL},
};

static const struct sc_name cmd_specific[] = {
	{0x00, "Completion Queue Invalid"},
	{0x01, "Invalid Queue Identifier"},
	{0x02, "Invalid Queue Size"},
	{0x03, "Abort Command Limit Exceeded"},
	{0x05, "Asynchronous Event Request Limit Exceeded"},
	{0x08, "Invalid Interrupt Vector"},
	{0x09, "Invalid Log Page"},
	{0x0a, "Invalid Format"},
	{0x0c, "Invalid Queue Deletion"},
	{0x80, "Conflicting Attributes"},
	{0x81, "Invalid Protection Information"},
	{0x82, "Attempted Write to Read Only Range"},
	{0, NULL},
};

static const struct sc_name media[] = {
	{0x80, "Write Fault"},
	{0x81, "Unrecovered Read Error"},
	{0x82, "End-to-end Guard Check Error"},
	{0x83, "End-to-end Application Tag Check Error"},
	{0x84, "End-to-end Reference Tag Check Error"},
	{0x85, "Compare Failure"},
	{0x86, "Access Denied"},
	{0x87, "Deallocated or Unwritten Logical Block"},
	{0, NULL},
};

static const char *lookup(const struct sc_name *t, uint8_t sc)
{
	for (; t->name; t++)
		if (t->sc == sc)
			return t->name;
	return NULL;
}

const char *nvme_sf_name(uint16_t sf)
{
	uint8_t sc = (uint8_t)NVME_SF_SC(sf);
	const char *name = NULL;
	switch (NVME_SF_SCT(sf)) {
	case NVME_SCT_GENERIC:
		name = lookup(generic, sc);
		break;
	case NVME_SCT_CMD_SPECIFIC:
		name = lookup(cmd_specific, sc);
		break;
	case NVME_SCT_MEDIA:
		name = lookup(media, sc);
		break;
	case NVME_SCT_PATH:
		return "Path Related Status";
	case NVME_SCT_VENDOR:
		return "Vendor Specific Status";
	}
	return name ? name : "Unknown Status";
}

char *nvme_sf_str(uint16_t sf, char *buf, unsigned long len)
{
	snprintf(buf, len, "%s (SCT %u SC 0x%02x%s)", nvme_sf_name(sf), NVME_SF_SCT(sf),
		 NVME_SF_SC(sf), NVME_SF_DNR(sf) ? ", DNR" : "");
	return buf;
}
