/* The conference state machine (confsm.h). */
#include "confsm.h"

#include <string.h>

static const char *const state_names[CSS_NSTATES] = {
	[CSS_CREATING] = "creating",   [CSS_RUNNING] = "running", [CSS_PENDING_RESTORE] = "pending_restore",
	[CSS_RESTORING] = "restoring", [CSS_ENDING] = "ending",	  [CSS_ENDED] = "ended",
};

static const char *const event_names[CSS_NEVENTS] = {
	[CSS_EV_MCU_ACK] = "mcu_ack",	[CSS_EV_MCU_NACK] = "mcu_nack", [CSS_EV_TIMEOUT] = "timeout",
	[CSS_EV_END] = "end",		[CSS_EV_EXPIRE] = "expire",	[CSS_EV_MCU_ENDED] = "mcu_ended",
	[CSS_EV_END_DONE] = "end_done", [CSS_EV_MCU_LOST] = "mcu_lost", [CSS_EV_RESTORE_SENT] = "restore_sent",
	[CSS_EV_GIVE_UP] = "give_up",	[CSS_EV_ADOPT] = "adopt",
};

#define X -1
/* next[state][event]; X: not allowed. */
static const int next[CSS_NSTATES][CSS_NEVENTS] = {
	/*                     ack            nack               timeout            end          expire       mcu_ended  end_done  mcu_lost             restore_sent   give_up  adopt */
	[CSS_CREATING] = { CSS_RUNNING, CSS_ENDED, CSS_ENDED, X, X, CSS_ENDED, X, CSS_ENDED, X, X, X },
	[CSS_RUNNING] = { CSS_RUNNING, X, X, CSS_ENDING, CSS_ENDING, CSS_ENDED, X, CSS_PENDING_RESTORE, X, X, X },
	[CSS_PENDING_RESTORE] = { X, X, X, CSS_ENDED, CSS_ENDED, X, X, CSS_PENDING_RESTORE, CSS_RESTORING, CSS_ENDED,
				  CSS_RUNNING },
	[CSS_RESTORING] = { CSS_RUNNING, CSS_PENDING_RESTORE, CSS_PENDING_RESTORE, CSS_ENDING, CSS_ENDING, CSS_ENDED, X,
			    CSS_PENDING_RESTORE, X, CSS_ENDED, X },
	[CSS_ENDING] = { CSS_ENDING, CSS_ENDING, CSS_ENDED, CSS_ENDING, CSS_ENDING, CSS_ENDED, CSS_ENDED, CSS_ENDED, X,
			 X, X },
	[CSS_ENDED] = { X, X, X, X, X, X, X, X, X, X, X },
};
#undef X

const char *css_state_name(enum css_state st)
{
	return (unsigned)st < CSS_NSTATES ? state_names[st] : "?";
}

int css_state_parse(const char *name, enum css_state *ret)
{
	for (int i = 0; name && i < CSS_NSTATES; i++) {
		if (!strcmp(name, state_names[i])) {
			*ret = (enum css_state)i;
			return 0;
		}
	}
	return -1;
}

const char *css_event_name(enum css_event ev)
{
	return (unsigned)ev < CSS_NEVENTS ? event_names[ev] : "?";
}

int css_sm_next(enum css_state st, enum css_event ev)
{
	if ((unsigned)st >= CSS_NSTATES || (unsigned)ev >= CSS_NEVENTS)
		return -1;
	return next[st][ev];
}

bool css_state_live(enum css_state st)
{
	return st != CSS_ENDED;
}
