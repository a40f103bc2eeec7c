
/*
 * FishChat for nginx: login tokens (JWT, RFC 7519, compact form).
 *
 * The key (an HMAC secret or a public key, each from a file), the one
 * algorithm accepted, and every claim check live here, so that each role
 * (msg servers, manager, and the media and files roles to come) checks
 * tokens the same way.  Parsing and signatures are libjwt's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jwt.h>
#include <jansson.h>
#include "ngx_fishchat.h"

#if (NGX_OPENSSL)
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#endif


#define NGX_FISHCHAT_AUTH_SECRET_MIN  32


static ngx_uint_t ngx_fishchat_auth_hmac(ngx_uint_t alg);
static ngx_uint_t ngx_fishchat_auth_world_readable(ngx_str_t *name);
static ngx_int_t ngx_fishchat_auth_read(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *out);
static ngx_int_t ngx_fishchat_token_audience(ngx_fishchat_conf_t *fcf,
    jwt_t *jwt);
static ngx_int_t ngx_fishchat_token_claim(jwt_t *jwt, const char *name,
    char *want);
static ngx_int_t ngx_fishchat_token_time(jwt_t *jwt, const char *claim,
    time_t *value);


/* fishchat_auth_secret_file, fishchat_auth_public_key_file */

char *
ngx_fishchat_auth_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_fishchat_conf_t *fcf = conf;

    ngx_str_t  *value, *key;

    value = cf->args->elts;

    key = (ngx_str_t *) ((char *) fcf + cmd->offset);

    if (key->data) {
        return "is duplicate";
    }

    if (ngx_fishchat_auth_read(cf, &value[1], key) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cmd->offset == offsetof(ngx_fishchat_conf_t, auth_secret)) {

        if (ngx_fishchat_auth_world_readable(&value[1])) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "the secret in \"%V\" is readable by every "
                               "user", &value[1]);
        }

        /* a secret ends at its line: "echo" and editors add a newline */

        while (key->len
               && (key->data[key->len - 1] == LF
                   || key->data[key->len - 1] == CR))
        {
            key->len--;
        }

        if (key->len < NGX_FISHCHAT_AUTH_SECRET_MIN) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the secret in \"%V\" is %uz bytes long, "
                               "at least %d expected", &value[1], key->len,
                               NGX_FISHCHAT_AUTH_SECRET_MIN);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

#if (NGX_OPENSSL)
    {
    BIO       *bio;
    EVP_PKEY  *pkey;

    bio = BIO_new_mem_buf(key->data, (int) key->len);
    if (bio == NULL) {
        return NGX_CONF_ERROR;
    }

    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);

    if (pkey == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" holds no PEM public key", &value[1]);
        return NGX_CONF_ERROR;
    }

    EVP_PKEY_free(pkey);
    }
#endif

    return NGX_CONF_OK;
}


/* fishchat_auth_alg HS256 | RS256 | ES256 | ...; "none" is refused */

char *
ngx_fishchat_auth_alg(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_fishchat_conf_t *fcf = conf;

    u_char     name[16];
    jwt_alg_t  alg;
    ngx_str_t  *value;

    if (fcf->auth_alg != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    alg = JWT_ALG_INVAL;

    if (value[1].len < sizeof(name)) {
        ngx_cpystrn(name, value[1].data, value[1].len + 1);
        alg = jwt_str_alg((char *) name);
    }

    if (alg == JWT_ALG_INVAL || alg == JWT_ALG_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid algorithm \"%V\": HS256, HS384, HS512, "
                           "RS256, RS384, RS512, ES256, ES384 or ES512 "
                           "expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    fcf->auth_alg = alg;

    return NGX_CONF_OK;
}


/* after the whole configuration: the key must fit the algorithm */

ngx_int_t
ngx_fishchat_auth_init_conf(ngx_cycle_t *cycle, ngx_fishchat_conf_t *fcf)
{
    ngx_uint_t  hmac;

    ngx_conf_init_uint_value(fcf->auth_alg, JWT_ALG_HS256);

    if (fcf->auth_leeway == NGX_CONF_UNSET) {
        fcf->auth_leeway = 30;
    }

    hmac = ngx_fishchat_auth_hmac(fcf->auth_alg);

    if (hmac && fcf->auth_secret.len == 0 && fcf->auth_public_key.len) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"fishchat_auth_public_key_file\" needs an RS or ES "
                      "\"fishchat_auth_alg\", %s is an HMAC",
                      jwt_alg_str(fcf->auth_alg));
        return NGX_ERROR;
    }

    if (!hmac && fcf->auth_public_key.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"fishchat_auth_alg %s\" needs "
                      "\"fishchat_auth_public_key_file\"",
                      jwt_alg_str(fcf->auth_alg));
        return NGX_ERROR;
    }

    if (fcf->auth_required && fcf->auth_secret.len == 0
        && fcf->auth_public_key.len == 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "tokens are required (\"fishchat_msg_auth token\") "
                      "but neither \"fishchat_auth_secret_file\" nor "
                      "\"fishchat_auth_public_key_file\" is set");
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_fishchat_auth_enabled(ngx_fishchat_conf_t *fcf)
{
    return fcf->auth_secret.len || fcf->auth_public_key.len;
}


static ngx_uint_t
ngx_fishchat_auth_hmac(ngx_uint_t alg)
{
    return alg == JWT_ALG_HS256 || alg == JWT_ALG_HS384
           || alg == JWT_ALG_HS512;
}


static ngx_uint_t
ngx_fishchat_auth_world_readable(ngx_str_t *name)
{
    ngx_file_info_t  fi;

    if (ngx_file_info(name->data, &fi) == NGX_FILE_ERROR) {
        return 0;
    }

    return (fi.st_mode & S_IROTH) != 0;
}


static ngx_int_t
ngx_fishchat_auth_read(ngx_conf_t *cf, ngx_str_t *name, ngx_str_t *out)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_int_t        rc;
    ngx_file_t       file;
    ngx_file_info_t  fi;

    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", name);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", name);
        goto done;
    }

    if (ngx_file_size(&fi) == 0 || ngx_file_size(&fi) > 65536) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must hold 1 to 65536 bytes", name);
        goto done;
    }


    out->len = (size_t) ngx_file_size(&fi);
    out->data = ngx_pnalloc(cf->pool, out->len + 1);
    if (out->data == NULL) {
        goto done;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.fd = fd;
    file.name = *name;
    file.log = cf->log;

    n = ngx_read_file(&file, out->data, out->len, 0);

    if (n != (ssize_t) out->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" could not be read whole", name);
        goto done;
    }

    out->data[out->len] = '\0';
    rc = NGX_OK;

done:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", name);
    }

    return rc;
}


/*
 * Checks a token: the signature with the configured key and algorithm
 * only, "exp" (required), "nbf", "aud" when fishchat_auth_audience is
 * set, "sub" against the id the client claims, and "act" and "stream"
 * against what t expects (a login token has no "act": a media token,
 * whose URL may be seen by others, never logs in).  NGX_OK fills t;
 * NGX_DECLINED (bad) and NGX_FISHCHAT_TOKEN_EXPIRED set *reason, a text
 * for the log that never holds the token.
 */

ngx_int_t
ngx_fishchat_token_verify(ngx_fishchat_conf_t *fcf, ngx_str_t *token,
    ngx_str_t *sub, ngx_fishchat_token_t *t, char **reason)
{
    u_char         *s;
    jwt_t          *jwt;
    time_t          now, nbf;
    ngx_int_t       rc;
    ngx_str_t      *key;
    const char     *claim;

    if (token->len == 0) {
        *reason = "no token";
        return NGX_DECLINED;
    }

    key = ngx_fishchat_auth_hmac(fcf->auth_alg) ? &fcf->auth_secret
                                                : &fcf->auth_public_key;

    if (key->len == 0) {
        *reason = "no key is configured";
        return NGX_DECLINED;
    }

    s = ngx_alloc(token->len + 1, ngx_cycle->log);
    if (s == NULL) {
        *reason = "no memory";
        return NGX_DECLINED;
    }

    ngx_cpystrn(s, token->data, token->len + 1);

    jwt = NULL;

    if (jwt_decode(&jwt, (char *) s, key->data, (int) key->len) != 0) {
        ngx_free(s);
        *reason = "not a token signed with the configured key";
        return NGX_DECLINED;
    }

    ngx_free(s);

    rc = NGX_DECLINED;
    now = ngx_time();

    if ((ngx_uint_t) jwt_get_alg(jwt) != fcf->auth_alg) {
        *reason = "not the configured algorithm";
        goto done;
    }

    if (ngx_fishchat_token_time(jwt, "exp", &t->exp) != NGX_OK) {
        *reason = "no \"exp\"";
        goto done;
    }

    if (t->exp + fcf->auth_leeway <= now) {
        *reason = "expired";
        rc = NGX_FISHCHAT_TOKEN_EXPIRED;
        goto done;
    }

    if (ngx_fishchat_token_time(jwt, "nbf", &nbf) == NGX_OK
        && nbf - fcf->auth_leeway > now)
    {
        *reason = "not valid yet (\"nbf\")";
        goto done;
    }

    if (ngx_fishchat_token_time(jwt, "iat", &t->iat) != NGX_OK) {
        t->iat = 0;
    }

    if (fcf->auth_audience.len
        && ngx_fishchat_token_audience(fcf, jwt) != NGX_OK)
    {
        *reason = "not for this audience (\"aud\")";
        goto done;
    }

    claim = jwt_get_grant(jwt, "sub");

    if (claim == NULL || ngx_strlen(claim) > NGX_FISHCHAT_ID_MAX) {
        *reason = claim ? "a \"sub\" too long" : "no \"sub\"";
        goto done;
    }

    t->sub_len = ngx_strlen(claim);
    ngx_memcpy(t->sub, claim, t->sub_len);

    if (sub && (ngx_strlen(claim) != sub->len
                || ngx_strncmp(claim, sub->data, sub->len) != 0))
    {
        *reason = "for another id (\"sub\")";
        goto done;
    }

    if (ngx_fishchat_token_claim(jwt, "act", t->act) != NGX_OK) {
        *reason = t->act ? "not for this action (\"act\")"
                         : "a media token (\"act\")";
        goto done;
    }

    if (t->stream.len) {
        claim = jwt_get_grant(jwt, "stream");

        if (claim == NULL || ngx_strlen(claim) != t->stream.len
            || ngx_strncmp(claim, t->stream.data, t->stream.len) != 0)
        {
            *reason = "for another stream (\"stream\")";
            goto done;
        }
    }

    rc = NGX_OK;

done:

    jwt_free(jwt);

    return rc;
}


/* a string claim must be "want", or absent when want is NULL */

static ngx_int_t
ngx_fishchat_token_claim(jwt_t *jwt, const char *name, char *want)
{
    const char  *v;

    v = jwt_get_grant(jwt, name);

    if (want == NULL) {
        return (v == NULL) ? NGX_OK : NGX_DECLINED;
    }

    return (v && ngx_strcmp(v, want) == 0) ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_fishchat_token_time(jwt_t *jwt, const char *claim, time_t *value)
{
    long  v;

    errno = 0;
    v = jwt_get_grant_int(jwt, claim);

    if (errno != 0) {
        return NGX_DECLINED;
    }

    *value = (time_t) v;

    return NGX_OK;
}


/* "aud": a string, or an array of strings one of which is ours */

static ngx_int_t
ngx_fishchat_token_audience(ngx_fishchat_conf_t *fcf, jwt_t *jwt)
{
    char        *text;
    size_t       i;
    json_t      *root, *e;
    ngx_int_t    rc;
    const char  *aud;
    ngx_str_t   *want;

    want = &fcf->auth_audience;

    aud = jwt_get_grant(jwt, "aud");

    if (aud) {
        return (ngx_strlen(aud) == want->len
                && ngx_strncmp(aud, want->data, want->len) == 0)
               ? NGX_OK : NGX_DECLINED;
    }

    text = jwt_get_grants_json(jwt, "aud");
    if (text == NULL) {
        return NGX_DECLINED;
    }

    root = json_loads(text, 0, NULL);
    free(text);

    if (root == NULL) {
        return NGX_DECLINED;
    }

    rc = NGX_DECLINED;

    if (json_is_array(root)) {
        for (i = 0; i < json_array_size(root); i++) {
            e = json_array_get(root, i);

            if (json_is_string(e)
                && json_string_length(e) == want->len
                && ngx_strncmp(json_string_value(e), want->data, want->len)
                   == 0)
            {
                rc = NGX_OK;
                break;
            }
        }
    }

    json_decref(root);

    return rc;
}


/*
 * A token for id, valid for ttl seconds, with the "stream" and "act" of
 * t if any, signed with the HMAC secret: login tokens for backends
 * without a JWT library (POST /tokens), media tokens.  t->exp is set.
 * NGX_DECLINED: no secret to sign with (the server checks a public key's
 * signatures).
 */

ngx_int_t
ngx_fishchat_token_mint(ngx_pool_t *pool, ngx_fishchat_conf_t *fcf,
    ngx_str_t *id, time_t ttl, ngx_fishchat_token_t *t, ngx_str_t *token)
{
    char       *s;
    jwt_t      *jwt;
    time_t      now;
    ngx_int_t   rc;
    u_char      sub[NGX_FISHCHAT_ID_MAX + 1];
    u_char      aud[NGX_FISHCHAT_ID_MAX + 1];
    u_char      stream[NGX_FISHCHAT_ID_MAX + 1];

    if (fcf->auth_secret.len == 0 || !ngx_fishchat_auth_hmac(fcf->auth_alg)) {
        return NGX_DECLINED;
    }

    if (id->len > NGX_FISHCHAT_ID_MAX
        || fcf->auth_audience.len > NGX_FISHCHAT_ID_MAX
        || t->stream.len > NGX_FISHCHAT_ID_MAX)
    {
        return NGX_ERROR;
    }

    if (jwt_new(&jwt) != 0) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;
    s = NULL;
    now = ngx_time();

    ngx_cpystrn(sub, id->data, id->len + 1);

    if (jwt_add_grant(jwt, "sub", (char *) sub) != 0
        || jwt_add_grant_int(jwt, "exp", (long) (now + ttl)) != 0)
    {
        goto done;
    }

    /*
     * "iat" is for revoking login tokens; a media token goes without it:
     * nginx-rtmp passes at most 255 bytes of a URL's arguments
     */

    if (t->act == NULL && jwt_add_grant_int(jwt, "iat", (long) now) != 0) {
        goto done;
    }

    if (fcf->auth_audience.len) {
        ngx_cpystrn(aud, fcf->auth_audience.data,
                    fcf->auth_audience.len + 1);

        if (jwt_add_grant(jwt, "aud", (char *) aud) != 0) {
            goto done;
        }
    }

    if (t->stream.len) {
        ngx_cpystrn(stream, t->stream.data, t->stream.len + 1);

        if (jwt_add_grant(jwt, "stream", (char *) stream) != 0) {
            goto done;
        }
    }

    if (t->act && jwt_add_grant(jwt, "act", t->act) != 0) {
        goto done;
    }

    if (jwt_set_alg(jwt, fcf->auth_alg, fcf->auth_secret.data,
                    (int) fcf->auth_secret.len)
        != 0)
    {
        goto done;
    }

    s = jwt_encode_str(jwt);
    if (s == NULL) {
        goto done;
    }

    token->len = ngx_strlen(s);
    token->data = ngx_pnalloc(pool, token->len);
    if (token->data == NULL) {
        goto done;
    }

    ngx_memcpy(token->data, s, token->len);
    t->exp = now + ttl;
    t->iat = now;
    rc = NGX_OK;

done:

    if (s) {
        free(s);
    }

    jwt_free(jwt);

    return rc;
}


/*
 * A file id: 16 bytes of OpenSSL's random generator in hex (32 bytes of
 * "p"), what makes a download URL unguessable.  NGX_DECLINED without
 * OpenSSL.
 */

ngx_int_t
ngx_fishchat_files_id(u_char *p)
{
#if (NGX_OPENSSL)
    u_char  r[NGX_FISHCHAT_FILE_ID_LEN / 2];

    if (RAND_bytes(r, sizeof(r)) != 1) {
        return NGX_ERROR;
    }

    ngx_hex_dump(p, r, sizeof(r));

    return NGX_OK;

#else

    return NGX_DECLINED;

#endif
}


/*
 * The signatures of the files role: HMAC-SHA256 with the HS* secret of
 * "data", base64url into "sig" (43 bytes, caller's).  NGX_DECLINED
 * without a secret (or without OpenSSL).
 */

static ngx_int_t
ngx_fishchat_files_hmac(ngx_fishchat_conf_t *fcf, u_char *data, size_t len,
    ngx_str_t *sig)
{
#if (NGX_OPENSSL)
    unsigned int   n;
    ngx_str_t      md;
    u_char         mac[EVP_MAX_MD_SIZE];

    if (fcf->auth_secret.len == 0) {
        return NGX_DECLINED;
    }

    if (HMAC(EVP_sha256(), fcf->auth_secret.data, (int) fcf->auth_secret.len,
             data, len, mac, &n)
        == NULL)
    {
        return NGX_ERROR;
    }

    md.data = mac;
    md.len = n;

    ngx_encode_base64url(sig, &md);

    return NGX_OK;

#else

    return NGX_DECLINED;

#endif
}


/* an upload slot's PUT URL: "put", the file id, its size, type, expiry */

ngx_int_t
ngx_fishchat_files_sig(ngx_fishchat_conf_t *fcf, ngx_str_t *id, off_t size,
    ngx_str_t *type, time_t exp, ngx_str_t *sig)
{
    u_char  *p;
    u_char   data[NGX_FISHCHAT_ID_MAX + NGX_OFF_T_LEN + NGX_TIME_T_LEN + 160];

    if (id->len > NGX_FISHCHAT_ID_MAX || type->len > 127) {
        return NGX_DECLINED;
    }

    p = ngx_sprintf(data, "put\n%V\n%O\n%V\n%T", id, size, type, exp);

    return ngx_fishchat_files_hmac(fcf, data, p - data, sig);
}


/*
 * a download link of fishchat_files_access token: "get", the file id and
 * the expiry; good for the file, its info and its thumbnail
 */

ngx_int_t
ngx_fishchat_files_get_sig(ngx_fishchat_conf_t *fcf, ngx_str_t *id,
    time_t exp, ngx_str_t *sig)
{
    u_char  *p;
    u_char   data[NGX_FISHCHAT_ID_MAX + NGX_TIME_T_LEN + 16];

    if (id->len > NGX_FISHCHAT_ID_MAX) {
        return NGX_DECLINED;
    }

    p = ngx_sprintf(data, "get\n%V\n%T", id, exp);

    return ngx_fishchat_files_hmac(fcf, data, p - data, sig);
}


/*
 * The download URL of a file (and "suffix": "", "/info" or "/thumb") as
 * a reader is given it: fishchat_files_url/<id>, and with
 * fishchat_files_access token "?exp=<exp>&sig=<sig>" good for
 * fishchat_files_link_ttl.  NGX_DECLINED: token access without a secret.
 */

ngx_int_t
ngx_fishchat_files_get_url(ngx_pool_t *pool, ngx_fishchat_conf_t *fcf,
    ngx_str_t *id, char *suffix, ngx_str_t *url)
{
    u_char  *p;

    p = ngx_pnalloc(pool, ngx_fishchat_files_link_len(fcf, id->len, suffix));
    if (p == NULL) {
        return NGX_ERROR;
    }

    url->data = p;

    p = ngx_fishchat_files_link(p, fcf, id, suffix);
    if (p == NULL) {
        return NGX_DECLINED;
    }

    url->len = p - url->data;

    return NGX_OK;
}


/* the bytes ngx_fishchat_files_link() writes at most */

size_t
ngx_fishchat_files_link_len(ngx_fishchat_conf_t *fcf, size_t id,
    char *suffix)
{
    return fcf->files_url.len + id + ngx_strlen(suffix)
           + sizeof("/?exp=&sig=") + NGX_TIME_T_LEN + 64;
}


/* ngx_fishchat_files_get_url() into "p": its end, NULL when not signed */

u_char *
ngx_fishchat_files_link(u_char *p, ngx_fishchat_conf_t *fcf, ngx_str_t *id,
    char *suffix)
{
    time_t     exp;
    ngx_str_t  sig;
    u_char     s[64];

    p = ngx_sprintf(p, "%V/%V%s", &fcf->files_url, id, suffix);

    if (fcf->files_access != NGX_FISHCHAT_FILES_TOKEN) {
        return p;
    }

    exp = ngx_time() + fcf->files_link_ttl;
    sig.data = s;

    if (ngx_fishchat_files_get_sig(fcf, id, exp, &sig) != NGX_OK) {
        return NULL;
    }

    return ngx_sprintf(p, "?exp=%T&sig=%V", exp, &sig);
}


/*
 * The URL of a stream for "sub", with a media token: "publish" the RTMP
 * URL (the token in its arguments), "play" the HLS playlist and "vod" the
 * recording (the token in the path, so that relative URLs carry it).
 * NGX_DECLINED: no secret to sign with; NGX_ABORT: the token is longer
 * than nginx-rtmp takes (255 bytes of a URL's arguments).
 */

ngx_int_t
ngx_fishchat_media_url(ngx_pool_t *pool, ngx_fishchat_conf_t *fcf,
    ngx_str_t *sub, ngx_str_t *stream, char *act, ngx_str_t *url,
    time_t *expires)
{
    u_char                *p;
    ngx_int_t              rc;
    ngx_str_t              token, *base;
    ngx_uint_t             publish, vod;
    ngx_fishchat_token_t   t;

    publish = (ngx_strcmp(act, "publish") == 0);
    vod = (ngx_strcmp(act, "vod") == 0);

    ngx_memzero(&t, sizeof(ngx_fishchat_token_t));
    t.stream = *stream;
    t.act = publish ? "publish" : "play";

    rc = ngx_fishchat_token_mint(pool, fcf, sub, fcf->media_token_ttl, &t,
                                 &token);
    if (rc != NGX_OK) {
        return rc;
    }

    if (publish && token.len + sizeof("token=") - 1 > 255) {
        return NGX_ABORT;
    }

    base = publish ? &fcf->media_rtmp_url
                   : vod ? &fcf->media_vod_url : &fcf->media_hls_url;

    p = ngx_pnalloc(pool, base->len + token.len + stream->len
                          + sizeof("//?token=.m3u8"));
    if (p == NULL) {
        return NGX_ERROR;
    }

    url->data = p;
    url->len = (publish
                ? ngx_sprintf(p, "%V/%V?token=%V", base, stream, &token)
                : ngx_sprintf(p, "%V/%V/%V.%s", base, &token, stream,
                              vod ? "mp4" : "m3u8"))
               - p;

    *expires = t.exp;

    return NGX_OK;
}
