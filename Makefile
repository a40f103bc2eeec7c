# FishChat for nginx. `make run` and `make test` do all the set-up.

NGINX       = $(CURDIR)/build/nginx/sbin/nginx
NGINX_DYN   = $(CURDIR)/build/dynamic/sbin/nginx
CONF        = $(CURDIR)/conf/fishchat.conf
REDIS_HOST ?= 127.0.0.1
REDIS_PORT ?= 6379
PROVE_ARGS ?= -r t/
DYN_TESTS  ?= t/gateway.t t/router.t t/msg-workers.t t/manager.t t/auth.t \
              t/monitor.t t/persistence.t

.PHONY: all deps build build-dynamic run stop test test-dynamic bench bench-run clean

all: build

deps:
	@util/deps.sh

build: deps
	@util/build.sh static

build-dynamic: deps
	@util/build.sh dynamic

# nginx in the foreground with conf/fishchat.conf; Ctrl-C stops it and the
# Redis it started
run: build
	@mkdir -p var/run/logs var/run/hls var/run/rec var/run/vod var/run/files
	@util/redis.sh run $(REDIS_HOST) $(REDIS_PORT)
	@util/tls.sh
	@util/run.sh $(NGINX) $(CONF) $(CURDIR)/var/run

stop:
	@if [ -f var/run/logs/nginx.pid ]; then \
	    kill -QUIT $$(cat var/run/logs/nginx.pid) 2>/dev/null || true; fi
	@util/redis.sh stop run

test: build
	@port=$$(util/redis.sh test) && \
	TEST_NGINX_RANDOMIZE=1 TEST_NGINX_REDIS_PORT=$$port TEST_NGINX_BINARY=$(NGINX) \
	    prove -I t/lib $(PROVE_ARGS); \
	rc=$$?; util/redis.sh stop test; exit $$rc

# the suite as dynamic modules (load_module) against the same nginx
test-dynamic: build-dynamic
	@port=$$(util/redis.sh test) && \
	TEST_NGINX_RANDOMIZE=1 TEST_NGINX_REDIS_PORT=$$port TEST_NGINX_BINARY=$(NGINX_DYN) \
	TEST_NGINX_LOAD_MODULES="$(CURDIR)/build/dynamic/modules/ngx_fishchat_module.so $$(ls $(CURDIR)/build/dynamic/modules/ngx_*fishchat*.so | grep -v '/ngx_fishchat_module.so')" \
	    prove -I t/lib $(DYN_TESTS); \
	rc=$$?; util/redis.sh stop test; exit $$rc

# the load generator, and the benchmark of bench/README.md
bench:
	@$(MAKE) -s -C bench

bench-run: build bench
	@bench/run.sh

clean:
	rm -rf build/objs-static build/objs-dynamic build/nginx build/dynamic t/servroot
