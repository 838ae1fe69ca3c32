/* The conference state machine of css: every path that changes a
 * conference (create, end, expiry, MCU notices, reconciliation, restore)
 * asks it for the next state, so the rules live in one table (docs/css.md).
 * Pure logic, unit-tested by tests/unit/test_css_sm.c. */
#ifndef CSS_CONFSM_H
#define CSS_CONFSM_H

#include <stdbool.h>

enum css_state {
	CSS_CREATING,	     /* allocated, create sent to the MCU, no answer yet */
	CSS_RUNNING,	     /* the MCU ACKed: the conference runs there */
	CSS_PENDING_RESTORE, /* its MCU or room was lost: to be created again elsewhere */
	CSS_RESTORING,	     /* re-create sent to another MCU */
	CSS_ENDING,	     /* end sent to the MCU */
	CSS_ENDED,	     /* over: history written, then the record goes */
	CSS_NSTATES
};

enum css_event {
	CSS_EV_MCU_ACK,	     /* the MCU ACKed the (re-)create */
	CSS_EV_MCU_NACK,     /* the MCU refused the (re-)create */
	CSS_EV_TIMEOUT,	     /* no answer to the create or the end in time */
	CSS_EV_END,	     /* asked to end (CM, operator) */
	CSS_EV_EXPIRE,	     /* its planned end has come */
	CSS_EV_MCU_ENDED,    /* the MCU says it ended there */
	CSS_EV_END_DONE,     /* the MCU ACKed the end, or does not run it */
	CSS_EV_MCU_LOST,     /* its MCU (room, platform) is lost */
	CSS_EV_RESTORE_SENT, /* re-create sent to a new MCU */
	CSS_EV_GIVE_UP,	     /* cannot be restored: ended on purpose */
	CSS_EV_ADOPT,	     /* its room is back and its MCU still runs it: taken back as it is */
	CSS_NEVENTS
};

const char *css_state_name(enum css_state st);
/* 0, or -1 for an unknown name. */
int css_state_parse(const char *name, enum css_state *ret);
const char *css_event_name(enum css_event ev);

/* The state after ev in st, or -1 when ev is not allowed in st (the caller
 * refuses or ignores the event and logs it). */
int css_sm_next(enum css_state st, enum css_event ev);

/* Whether a conference in st occupies an MCU (counts against limits). */
bool css_state_live(enum css_state st);

#endif
