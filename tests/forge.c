/* forge: publishes one message as an attacker would, and says what the
 * broker (and, with --reply, the receiver) made of it. The attack suite
 * (tests/attacks/) uses it: a raw librabbitmq client, so it can set any
 * user_id, or none, which the daemons' own client never does.
 *
 *   forge --amqp URL [--exchange EX] [--key KEY] [--user-id U | --no-user-id]
 *         [--reply SECONDS] FILE
 *
 * FILE (or - for stdin) is the body, sent as is (persistent, JSON, mandatory,
 * correlation_id and message_id "forge-<pid>"). The exchange defaults to the
 * default one (KEY is then a queue). user_id defaults to the URL's user.
 * Prints one line: "published", "unroutable", "refused by the broker: CODE
 * TEXT", then with --reply the answer's body, or "no answer". Exit: 0
 * published (and answered, with --reply), 3 refused by the broker, 4
 * published but not answered, 5 unroutable, 1 another error, 64 usage. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp.h>

#include <confdr/mq.h>

#include "harness.h"

static int usage(void)
{
	fprintf(stderr, "usage: forge --amqp URL [--exchange EX] [--key KEY] [--user-id U | --no-user-id] "
			"[--reply SECONDS] FILE\n");
	return 64;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return NULL;
	do {
		if (n == cap) {
			char *nb = realloc(buf, cap = cap ? 2 * cap : 65536);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	if (f != stdin)
		fclose(f);
	*len = n;
	return buf;
}

/* The broker closed the channel or the connection: says why, returns 3. */
static int refused(const amqp_frame_t *f)
{
	uint16_t code;
	amqp_bytes_t text;

	if (f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
		const amqp_channel_close_t *m = f->payload.method.decoded;
		code = m->reply_code;
		text = m->reply_text;
	} else {
		const amqp_connection_close_t *m = f->payload.method.decoded;
		code = m->reply_code;
		text = m->reply_text;
	}
	printf("refused by the broker: %u %.*s\n", code, (int)text.len, (const char *)text.bytes);
	return 3;
}

/* The broker's verdict on the publish: 0 acked, 5 returned, 3 the channel
 * or connection closed (printed), 1 otherwise. */
static int await_confirm(amqp_connection_state_t c)
{
	bool returned = false;

	for (;;) {
		amqp_frame_t f;
		struct timeval tv = { .tv_sec = 10 };
		int r = amqp_simple_wait_frame_noblock(c, &f, &tv);

		if (r != AMQP_STATUS_OK) {
			printf("no verdict from the broker: %s\n", amqp_error_string2(r));
			return 1;
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD: printf(returned ? "unroutable\n" : "published\n"); return returned ? 5 : 0;
		case AMQP_BASIC_NACK_METHOD: printf("nacked by the broker\n"); return 1;
		case AMQP_BASIC_RETURN_METHOD: returned = true; break;
		case AMQP_CHANNEL_CLOSE_METHOD:
		case AMQP_CONNECTION_CLOSE_METHOD: return refused(&f);
		default: break;
		}
	}
}

/* With a reply queue: the broker's verdict and the receiver's answer, in
 * whichever order they come (an answer may come before the confirm, which
 * waits for the disk). */
static int await_answer(amqp_connection_state_t c, int reply_s)
{
	int verdict = -1; /* the confirm's: 0 acked, 5 returned */
	bool returned = false;

	for (;;) {
		amqp_envelope_t env;
		struct timeval tv = { .tv_sec = reply_s };
		amqp_rpc_reply_t r;
		amqp_frame_t f;

		amqp_maybe_release_buffers(c);
		r = amqp_consume_message(c, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			if (verdict < 0)
				printf("published\n");
			printf("%.*s\n", (int)env.message.body.len, (const char *)env.message.body.bytes);
			amqp_destroy_envelope(&env);
			return 0;
		}
		if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION ||
		    r.library_error != AMQP_STATUS_UNEXPECTED_STATE) {
			if (verdict < 0)
				printf("no verdict from the broker\n");
			printf("no answer within %d s\n", reply_s);
			return verdict == 5 ? 5 : 4;
		}
		/* a method frame other than a delivery: the confirm, a return, a close */
		if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK || f.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD:
			verdict = returned ? 5 : 0;
			printf(returned ? "unroutable\n" : "published\n");
			if (returned)
				return 5;
			break;
		case AMQP_BASIC_RETURN_METHOD: returned = true; break;
		case AMQP_CHANNEL_CLOSE_METHOD:
		case AMQP_CONNECTION_CLOSE_METHOD: return refused(&f);
		default: break;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "amqp", required_argument, NULL, 'a' },
		{ "exchange", required_argument, NULL, 'e' },
		{ "key", required_argument, NULL, 'k' },
		{ "user-id", required_argument, NULL, 'u' },
		{ "no-user-id", no_argument, NULL, 'n' },
		{ "reply", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url = NULL, *exchange = "", *key = "", *user_id = NULL;
	bool no_user_id = false;
	int reply_s = 0, o, ret;
	char corr[64];
	amqp_bytes_t reply_q = amqp_empty_bytes;
	amqp_basic_properties_t p = { 0 };
	amqp_connection_state_t c;
	struct cdr_mq_url u;
	size_t len;
	char *body;

	while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (o) {
		case 'a': url = optarg; break;
		case 'e': exchange = optarg; break;
		case 'k': key = optarg; break;
		case 'u': user_id = optarg; break;
		case 'n': no_user_id = true; break;
		case 'r': reply_s = atoi(optarg); break;
		default: return usage();
		}
	}
	if (!url || optind != argc - 1 || reply_s < 0 || reply_s > 600)
		return usage();
	if (!(body = read_all(argv[optind], &len))) {
		fprintf(stderr, "forge: cannot read %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	if (cdr_mq_url_parse(url, &u, NULL, 0) < 0 || !(c = th_admin_open(url))) {
		printf("cannot connect to the broker\n");
		free(body);
		return 1;
	}
	amqp_confirm_select(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
		printf("confirm.select failed\n");
		ret = 1;
		goto out;
	}
	if (reply_s) {
		amqp_queue_declare_ok_t *q = amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);

		if (!q || amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
			printf("cannot declare a reply queue\n");
			ret = 1;
			goto out;
		}
		reply_q = amqp_bytes_malloc_dup(q->queue);
		amqp_basic_consume(c, 1, reply_q, amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
		if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL) {
			printf("cannot consume the reply queue\n");
			ret = 1;
			goto out;
		}
	}
	snprintf(corr, sizeof(corr), "forge-%ld", (long)getpid());
	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
		   AMQP_BASIC_MESSAGE_ID_FLAG;
	p.content_type = amqp_cstring_bytes("application/json");
	p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	p.correlation_id = p.message_id = amqp_cstring_bytes(corr);
	if (!no_user_id) {
		p._flags |= AMQP_BASIC_USER_ID_FLAG;
		p.user_id = amqp_cstring_bytes(user_id ? user_id : u.user);
	}
	if (reply_s) {
		p._flags |= AMQP_BASIC_REPLY_TO_FLAG;
		p.reply_to = reply_q;
	}
	if (amqp_basic_publish(c, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes(key), 1, 0, &p,
			       (amqp_bytes_t){ .len = len, .bytes = body }) != AMQP_STATUS_OK) {
		printf("publish failed\n");
		ret = 1;
		goto out;
	}
	if (!reply_s) {
		ret = await_confirm(c);
		goto out;
	}
	ret = await_answer(c, reply_s);
out:
	amqp_bytes_free(reply_q);
	th_admin_close(c);
	cdr_mq_url_clear(&u);
	free(body);
	return ret;
}
