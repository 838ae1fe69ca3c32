/* The broker topology of the design (section 4): its exchanges declared by
 * every daemon, so that whichever starts first creates them, and each work
 * queue by the daemon that consumes it (declaring a queue that dead-letters
 * takes the right to read it: docs/security.md). docs/amqp.md explains the
 * choices. */
#include "confdr/mq.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* Work queues: durable, dead-lettered to confdr.dlx so that a message a
 * consumer rejects (malformed, oversize) is kept for an operator. */
static const struct {
	const char *name, *owner;
} work_queues[] = {
	{ CDR_MQ_MAU_CONF_Q, "css" }, { CDR_MQ_MAU_CMU_Q, "css" }, { CDR_MQ_RMS_REQ_Q, "rms" },
	{ CDR_MQ_RMS_RES_Q, "rms" },  { CDR_MQ_PMS_REQ_Q, "pms" }, { CDR_MQ_BMC_CDR_Q, "css" }, /* css writes it */
};

static const struct {
	const char *name, *type;
} exchanges[] = {
	{ CDR_MQ_DLX, "fanout" },	     /* every dead letter, whatever its key */
	{ CDR_MQ_MAU_CMCMU_EX, "direct" },   /* routing key = the MCU's key */
	{ CDR_MQ_CMU_MAU_EX, "topic" },	     /* MCUs publish with any key; bound with "#" */
	{ CDR_MQ_RMS_NTF_EX, "fanout" },     /* MCU up/down, to every CSS */
	{ CDR_MQ_PMS_NTF_EX, "fanout" },     /* room/platform state, to all */
	{ CDR_MQ_PMS_BEAT_EX, "fanout" },    /* pms beats, to the pms of the backup platform */
	{ CDR_MQ_MODB_NOTIFY_EX, "fanout" }, /* BMC's user-domain/platform changes */
	{ CDR_MQ_UPU_NTF_EX, "fanout" },     /* E164 reports; UPU binds its own queue */
	{ CDR_MQ_ALARM_EX, "fanout" },	     /* alarms, to whoever watches */
	{ CDR_MQ_CM_NTF_EX, "fanout" },	     /* CSS -> CM notifications (ended, extended, renamed) */
};

int cdr_mq_declare_design(struct cdr_mq *mq)
{
	return cdr_mq_declare_design_for(mq, NULL);
}

int cdr_mq_declare_design_for(struct cdr_mq *mq, const char *daemon)
{
	size_t i;
	int r;

	for (i = 0; i < sizeof(exchanges) / sizeof(exchanges[0]); i++) {
		r = cdr_mq_declare_exchange(mq, exchanges[i].name, exchanges[i].type, true);
		if (r < 0)
			return r;
	}
	r = cdr_mq_declare_queue(mq, CDR_MQ_DEAD_Q, true, NULL);
	if (r < 0)
		return r;
	r = cdr_mq_bind(mq, CDR_MQ_DEAD_Q, CDR_MQ_DLX, "");
	if (r < 0)
		return r;
	for (i = 0; i < sizeof(work_queues) / sizeof(work_queues[0]); i++) {
		if (daemon && strcmp(daemon, work_queues[i].owner) != 0)
			continue;
		r = cdr_mq_declare_queue(mq, work_queues[i].name, true, CDR_MQ_DLX);
		if (r < 0)
			return r;
	}
	if (daemon && strcmp(daemon, "css") != 0)
		return 0;
	return cdr_mq_bind(mq, CDR_MQ_MAU_CMU_Q, CDR_MQ_CMU_MAU_EX, "#");
}
