// SPDX-License-Identifier: GPL-2.0
/*
 * Counters, readable without tools under /sys/class/misc/aiofsync/stats/,
 * and the global bound on requests held by all contexts.
 */
#include <linux/atomic.h>
#include <linux/device.h>
#include <linux/sysfs.h>

#include "aiofsync.h"

static atomic64_t aiofsync_stats[AIOFSYNC_NR_STATS];

/* Requests of all contexts, from submit until reaped. */
static atomic_t aiofsync_nr_requests = ATOMIC_INIT(0);

void aiofsync_stat_add(enum aiofsync_stat stat, long n)
{
	atomic64_add(n, &aiofsync_stats[stat]);
}

bool aiofsync_global_get(void)
{
	if (atomic_inc_return(&aiofsync_nr_requests) >
	    READ_ONCE(aiofsync_max_requests)) {
		atomic_dec(&aiofsync_nr_requests);
		return false;
	}
	return true;
}

void aiofsync_global_put(unsigned int n)
{
	atomic_sub(n, &aiofsync_nr_requests);
}

static ssize_t aiofsync_stat_show(struct device *dev,
				  struct device_attribute *attr, char *buf)
{
	struct dev_ext_attribute *ea = container_of(attr, struct dev_ext_attribute,
						    attr);

	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(ea->var));
}

#define AIOFSYNC_STAT_ATTR(_name, _stat)				\
	static struct dev_ext_attribute aiofsync_attr_##_name = {	\
		__ATTR(_name, 0444, aiofsync_stat_show, NULL),		\
		&aiofsync_stats[_stat]					\
	}

AIOFSYNC_STAT_ATTR(submitted, AIOFSYNC_STAT_SUBMITTED);
AIOFSYNC_STAT_ATTR(completed, AIOFSYNC_STAT_COMPLETED);
AIOFSYNC_STAT_ATTR(cancelled, AIOFSYNC_STAT_CANCELED);
AIOFSYNC_STAT_ATTR(errors, AIOFSYNC_STAT_ERRORS);
AIOFSYNC_STAT_ATTR(flushes, AIOFSYNC_STAT_FLUSHES);
AIOFSYNC_STAT_ATTR(flushes_saved, AIOFSYNC_STAT_FLUSHES_SAVED);
AIOFSYNC_STAT_ATTR(writes, AIOFSYNC_STAT_WRITES);
AIOFSYNC_STAT_ATTR(reads, AIOFSYNC_STAT_READS);

static ssize_t in_flight_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lld\n",
			  (long long)(atomic64_read(&aiofsync_stats[AIOFSYNC_STAT_SUBMITTED]) -
				      atomic64_read(&aiofsync_stats[AIOFSYNC_STAT_COMPLETED])));
}
static DEVICE_ATTR_RO(in_flight);

static ssize_t unreaped_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&aiofsync_nr_requests));
}
static DEVICE_ATTR_RO(unreaped);

static struct attribute *aiofsync_stat_attrs[] = {
	&aiofsync_attr_submitted.attr.attr,
	&aiofsync_attr_completed.attr.attr,
	&aiofsync_attr_cancelled.attr.attr,
	&aiofsync_attr_errors.attr.attr,
	&aiofsync_attr_flushes.attr.attr,
	&aiofsync_attr_flushes_saved.attr.attr,
	&aiofsync_attr_writes.attr.attr,
	&aiofsync_attr_reads.attr.attr,
	&dev_attr_in_flight.attr,
	&dev_attr_unreaped.attr,
	NULL,
};

static const struct attribute_group aiofsync_stat_group = {
	.name = "stats",
	.attrs = aiofsync_stat_attrs,
};

const struct attribute_group *aiofsync_attr_groups[] = {
	&aiofsync_stat_group,
	NULL,
};
