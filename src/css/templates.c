/* css: public conference templates, read from MySQL and published into
 * Redis for the CM. */
#include "css_int.h"

static void on_tpl_published(int status, const redisReply *reply, void *arg)
{
	(void)arg;
	if (status < 0 && status != -ECANCELED)
		cdr_warn("templates not published into Redis: %s", css_redis_err(status, reply));
	else if (status == 0)
		cdr_info("%lld public conference templates published into Redis", reply->integer);
}

/* Whether a template's details can fill in a create: an object whose fields,
 * over a minimal create of its user domain, still make a valid create body
 * (detail says what does not fit). */
static bool template_fits(const char *ud, json_t *details, char *detail, size_t len)
{
	const struct cdr_msg_type *spec = cdr_msg_type_find("cm_mau_createconf_req");
	json_t *probe;
	struct cdr_msg_error err;
	bool ok;

	if (!json_is_object(details)) {
		snprintf(detail, len, "details: not a JSON object");
		return false;
	}
	probe = json_pack("{s:s, s:s, s:s, s:i}", "e164", "000", "name", "template", "user_domain", ud, "duration_min",
			  60);
	if (!probe || !spec)
		return true; /* nothing to check against: the create checks it */
	json_object_update(probe, details);
	json_object_set_new(probe, "e164", json_string("000"));
	json_object_set_new(probe, "user_domain", json_string(ud));
	ok = cdr_msg_check_body(spec, probe, &err) == 0;
	if (!ok)
		snprintf(detail, len, "%s", err.detail);
	json_decref(probe);
	return ok;
}

static void on_templates(const struct cdr_db_result *r, void *arg)
{
	struct css *s = arg;
	struct redis_link *l;
	json_t *a, *skipped, *v;
	size_t i;
	char *txt;

	if (r->status == -ECANCELED)
		return;
	cdr_timer_start(s->tpl_timer, s->conf.template_refresh_ms, false);
	if (r->status < 0) {
		cdr_warn("templates not read from MySQL: %s", r->error ? r->error : strerror(-r->status));
		return;
	}
	a = json_array();
	skipped = json_array();
	for (i = 0; i < r->nrows; i++) {
		json_t *details = json_loads(cdr_db_value(r, i, 3) ? cdr_db_value(r, i, 3) : "{}", 0, NULL);
		char why[300];

		if (!template_fits(nz(cdr_db_value(r, i, 1)), details, why, sizeof(why))) {
			json_array_append_new(skipped,
					      json_pack("{s:s, s:s}", "id", nz(cdr_db_value(r, i, 0)), "why", why));
			json_decref(details);
			continue;
		}
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:o, s:s}", "id", cdr_db_value(r, i, 0),
						   "user_domain", cdr_db_value(r, i, 1), "name", cdr_db_value(r, i, 2),
						   "details", details ? details : json_object(), "updated",
						   nz(cdr_db_value(r, i, 4))));
	}
	txt = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
	if (!txt || (s->templates_txt && !strcmp(txt, s->templates_txt))) {
		free(txt);
		json_decref(a);
		json_decref(skipped);
		return; /* unchanged */
	}
	json_array_foreach(skipped, i, v)
	{
		char detail[400];

		snprintf(detail, sizeof(detail), "template %s not published: %s", cdr_msg_jstr(v, "id", "?"),
			 cdr_msg_jstr(v, "why", "?"));
		css_alarm(s, "minor", "template", cdr_msg_jstr(v, "id", "?"), detail);
	}
	json_decref(skipped);
	if (!(l = css_ready_link(s, s->platform))) {
		free(txt);
		json_decref(a);
		return; /* Redis down: the next refresh tries again */
	}
	{
		const char *args[1] = { txt };

		if (cdr_redis_script_run(l->tpl, on_tpl_published, s, 0, NULL, 1, args) < 0) {
			free(txt);
			json_decref(a);
			return;
		}
	}
	free(s->templates_txt);
	s->templates_txt = txt;
	json_decref(s->templates);
	s->templates = a;
}

void css_read_templates(void *arg)
{
	struct css *s = arg;
	struct cdr_db *db = cdr_daemon_db(s->d);

	if (!db || !s->active ||
	    cdr_db_exec(db,
			"SELECT id, user_domain, name, details, DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f') "
			"FROM conf_template ORDER BY id",
			NULL, 0, true, on_templates, s) < 0)
		cdr_timer_start(s->tpl_timer, s->conf.template_refresh_ms, false);
}
