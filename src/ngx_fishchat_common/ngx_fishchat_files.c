
/*
 * FishChat for nginx: upload slots, made alike by the msg server's
 * FILE_SLOT and the manager's POST /files/slots.
 *
 * The caller fills the owner, name, size and type of a
 * ngx_fishchat_files_slot_t; ngx_fishchat_files_slot_check() takes the
 * name, size and type as docs/files.md says (the type lower-cased), and
 * ngx_fishchat_files_slot_make() makes the id (16 random bytes), the
 * signature of the PUT URL (ngx_fishchat_files_sig), both URLs, and the
 * keys and arguments of NGX_FISHCHAT_LUA_FILE_SLOT.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_fishchat.h"


static ngx_str_t  ngx_fishchat_files_tag = ngx_string("files");


/*
 * The name (1 to 255 bytes, no control characters, no "/"), the size (1
 * to fishchat_files_max_size) and the type (type/subtype of letters,
 * digits and "!#$&^_.+-", at most 127 bytes, lower-cased in place into
 * the slot) of a slot.  NGX_OK; NGX_DECLINED: a bad name, size or type;
 * NGX_ABORT: over fishchat_files_max_size.
 */

ngx_int_t
ngx_fishchat_files_slot_check(ngx_fishchat_conf_t *fcf,
    ngx_fishchat_files_slot_t *s)
{
    u_char      c;
    size_t      i;
    ngx_str_t  *t;
    ngx_uint_t  slash;

    if (s->name.len == 0 || s->name.len > NGX_FISHCHAT_FILES_NAME_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < s->name.len; i++) {
        c = s->name.data[i];

        if (c < 0x20 || c == 0x7f || c == '/') {
            return NGX_DECLINED;
        }
    }

    if (s->size <= 0) {
        return NGX_DECLINED;
    }

    t = &s->type;

    if (t->len == 0 || t->len > NGX_FISHCHAT_FILES_TYPE_MAX) {
        return NGX_DECLINED;
    }

    slash = 0;

    for (i = 0; i < t->len; i++) {
        c = ngx_tolower(t->data[i]);
        s->tbuf[i] = c;

        if (c == '/') {
            if (slash++ || i == 0 || i == t->len - 1) {
                return NGX_DECLINED;
            }

            continue;
        }

        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
            || ngx_strlchr((u_char *) "!#$&^_.+-",
                           (u_char *) "!#$&^_.+-" + 9, c))
        {
            continue;
        }

        return NGX_DECLINED;
    }

    if (!slash) {
        return NGX_DECLINED;
    }

    t->data = s->tbuf;

    if (s->size > fcf->files_max_size) {
        return NGX_ABORT;
    }

    return NGX_OK;
}


/* the bytes the id and the URLs of a slot take (for "urls", below) */

size_t
ngx_fishchat_files_slot_len(ngx_fishchat_conf_t *fcf)
{
    return 2 * NGX_FISHCHAT_FILE_ID_LEN + fcf->files_url.len
           + NGX_TIME_T_LEN + sizeof("/?exp=&sig=") + 64
           + ngx_fishchat_files_link_len(fcf, NGX_FISHCHAT_FILE_ID_LEN, "");
}


/*
 * A checked slot of "owner" is made: the id, the expiry, the id and both
 * URLs in "urls" (ngx_fishchat_files_slot_len() bytes, where they must
 * stay while they are used), the script's keys at *keys (as
 * ngx_fishchat_key() writes them), and its arguments in s->args (for as
 * long as "s" lives).  NGX_ERROR: no id or signature (no random bytes, no
 * OpenSSL, no fishchat_auth_secret_file).
 */

ngx_int_t
ngx_fishchat_files_slot_make(ngx_fishchat_conf_t *fcf,
    ngx_fishchat_files_slot_t *s, u_char *urls, u_char **keys)
{
    u_char     *p;
    ngx_str_t  *a;

    s->id.data = urls;
    s->id.len = NGX_FISHCHAT_FILE_ID_LEN;

    s->expires = ngx_time() + fcf->files_slot_ttl;
    s->sig.data = s->sbuf;

    if (ngx_fishchat_files_id(urls) != NGX_OK
        || ngx_fishchat_files_sig(fcf, &s->id, s->size, &s->type, s->expires,
                                  &s->sig)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = urls + s->id.len;

    s->put_url.data = p;
    p = ngx_sprintf(p, "%V/%V?exp=%T&sig=%V", &fcf->files_url, &s->id,
                    s->expires, &s->sig);
    s->put_url.len = p - s->put_url.data;

    /* the download URL: signed with fishchat_files_access token */

    s->get_url.data = p;
    p = ngx_fishchat_files_link(p, fcf, &s->id, "");
    if (p == NULL) {
        return NGX_ERROR;
    }

    s->get_url.len = p - s->get_url.data;

    a = s->args;

    a[0] = ngx_fishchat_key(keys, "file:", &s->id, "");
    a[1] = ngx_fishchat_key(keys, "files:", &s->owner, "");
    a[2] = ngx_fishchat_key(keys, "files:", &s->owner, ":ids");
    a[3] = ngx_fishchat_key(keys, "", &ngx_fishchat_files_tag, ":expiry");
    a[4] = s->owner;
    a[5] = s->name;
    a[6] = s->type;
    a[7].data = s->num[0];
    a[7].len = ngx_sprintf(s->num[0], "%O", s->size) - s->num[0];
    a[8].data = s->num[1];
    a[8].len = ngx_sprintf(s->num[1], "%M", (ngx_msec_t) (ngx_time() * 1000))
               - s->num[1];
    a[9].data = s->num[2];
    a[9].len = ngx_sprintf(s->num[2], "%T", s->expires) - s->num[2];
    a[10].data = s->num[3];
    a[10].len = ngx_sprintf(s->num[3], "%O", fcf->files_quota) - s->num[3];
    a[11].data = s->num[4];
    a[11].len = ngx_sprintf(s->num[4], "%T", fcf->files_slot_ttl)
                - s->num[4];
    a[12] = s->id;

    /* the expiry as text, for the answers */
    s->exp = a[9];

    return NGX_OK;
}
