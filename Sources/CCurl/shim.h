#ifndef SPOOL_CCURL_SHIM_H
#define SPOOL_CCURL_SHIM_H

/* libcurl is loaded with dlopen when the first callback is sent, not linked:
 * it brings about thirty libraries (OpenSSL, GnuTLS, Kerberos, LDAP, ...),
 * some 6 MB of resident memory in every worker process, most of which never
 * sends a callback. Only curl's types and constants come from its header. */
#include <curl/curl.h>
#include <dlfcn.h>
#include <stddef.h>

/* The libcurl functions Spool calls. easy_setopt and easy_getinfo are
 * variadic, which Swift cannot call: they are kept as plain pointers and
 * called through the typed wrappers below. */
typedef struct spool_curl {
    CURLcode (*_Nonnull global_init)(long flags);
    CURL *(*_Nonnull easy_init)(void);
    CURLcode (*_Nonnull easy_perform)(CURL *handle);
    void (*_Nonnull easy_cleanup)(CURL *handle);
    const char *_Nonnull (*_Nonnull easy_strerror)(CURLcode code);
    struct curl_slist *(*_Nonnull slist_append)(struct curl_slist *list, const char *line);
    void (*_Nonnull slist_free_all)(struct curl_slist *list);
    void *_Nonnull easy_setopt;
    void *_Nonnull easy_getinfo;
} spool_curl;

/* Loads libcurl.so.4 and fills `api` (every field, or the call failed).
 * Returns NULL, or dlerror()'s text when the library or one of its functions
 * is missing. Call it once (dlopen counts references; the library stays
 * loaded). */
static inline const char *spool_curl_load(spool_curl *api) {
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return dlerror();
#define SPOOL_CURL_SYMBOL(field, name)                    \
    do {                                                  \
        void *symbol = dlsym(lib, name);                  \
        if (!symbol) return dlerror();                    \
        *(void **)(&api->field) = symbol;                 \
    } while (0)
    SPOOL_CURL_SYMBOL(global_init, "curl_global_init");
    SPOOL_CURL_SYMBOL(easy_init, "curl_easy_init");
    SPOOL_CURL_SYMBOL(easy_perform, "curl_easy_perform");
    SPOOL_CURL_SYMBOL(easy_cleanup, "curl_easy_cleanup");
    SPOOL_CURL_SYMBOL(easy_strerror, "curl_easy_strerror");
    SPOOL_CURL_SYMBOL(slist_append, "curl_slist_append");
    SPOOL_CURL_SYMBOL(slist_free_all, "curl_slist_free_all");
    SPOOL_CURL_SYMBOL(easy_setopt, "curl_easy_setopt");
    SPOOL_CURL_SYMBOL(easy_getinfo, "curl_easy_getinfo");
#undef SPOOL_CURL_SYMBOL
    return NULL;
}

typedef CURLcode (*spool_curl_setopt_fn)(CURL *, CURLoption, ...);
typedef CURLcode (*spool_curl_getinfo_fn)(CURL *, CURLINFO, ...);

static inline CURLcode spool_curl_setopt_long(const spool_curl *api, CURL *h, CURLoption o, long v) {
    return ((spool_curl_setopt_fn)api->easy_setopt)(h, o, v);
}
static inline CURLcode spool_curl_setopt_string(const spool_curl *api, CURL *h, CURLoption o, const char *v) {
    return ((spool_curl_setopt_fn)api->easy_setopt)(h, o, v);
}
static inline CURLcode spool_curl_setopt_pointer(const spool_curl *api, CURL *h, CURLoption o, void *v) {
    return ((spool_curl_setopt_fn)api->easy_setopt)(h, o, v);
}
static inline CURLcode spool_curl_setopt_write(const spool_curl *api, CURL *h, size_t (*f)(char *, size_t, size_t, void *)) {
    return ((spool_curl_setopt_fn)api->easy_setopt)(h, CURLOPT_WRITEFUNCTION, f);
}
static inline CURLcode spool_curl_getinfo_long(const spool_curl *api, CURL *h, CURLINFO i, long *v) {
    return ((spool_curl_getinfo_fn)api->easy_getinfo)(h, i, v);
}

#endif
