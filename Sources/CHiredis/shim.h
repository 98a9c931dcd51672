#ifndef SPOOL_CHIREDIS_SHIM_H
#define SPOOL_CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <sys/time.h>

/* Swift imports `char errstr[128]` as a tuple; hand it over as a C string. */
static inline const char *spool_redis_errstr(const redisContext *c) { return c->errstr; }
static inline int spool_redis_err(const redisContext *c) { return c->err; }
static inline int spool_redis_fd(const redisContext *c) { return c->fd; }

#endif
