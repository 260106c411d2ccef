// A WASI 0.3 HTTP handler (`wasi:http/service@0.3.0`) in C, on bindings from wit-bindgen-c:
// answers "hello <path>\n", as the 0.2 `http_hello` does, and:
//   /echo   streams the request's body back as the response's, 64 KiB at a time (memory
//           stays flat whatever the size);
//   /fetch/SCHEME/AUTHORITY/PATH  sends a GET there through `wasi:http/client@0.3.0` and
//           answers with the upstream's own response, or 502 with `denied`
//           (HTTP-request-denied) or `error <tag>`;
//   /trailers  answers as for any path, with a trailer `x-wasmbox-trailer: wasi 0.3`;
//   /trap   traps;  /hang  answers only after an hour (wasi:clocks' `wait-for`);
//   /gather/N/...  answers (as for any path) only once N /gather requests have arrived in this
//           instance, looking every 2 ms: all N are answered only if all N were in flight in
//           one instance at once.
//
// `handle` is async (the callback form): it returns the response as soon as it has one, then
// moves the body through its streams and ends its futures, waiting for the host whenever an
// operation blocks, and exits once nothing is left. An instance serves many requests, several
// at once: each request's state is its task's (the task's context slot 0 points to it), kept
// on a free list for the next request so memory stays flat.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bindings.h"

#define BLOCKED BINDINGS_WAITABLE_STATUS_BLOCKED
#define WAIT(set) BINDINGS_CALLBACK_CODE_WAIT(set)

struct request {
    struct request *next_spare;
    bindings_waitable_set_t set;
    // Our response's body and trailers (phase 0: the body; 1: the request's future; 2: the
    // trailers; 3: done).
    int phase;
    bool responding;
    wasi_http_types_stream_u8_writer_t body;
    wasi_http_types_future_result_option_own_trailers_error_code_writer_t trailers;
    uint8_t buf[65536];
    size_t len, off;
    // /echo: the request's body, its trailers, and how its consumption ended.
    bool echo, in_done, with_trailers;
    wasi_http_types_stream_u8_t in;
    wasi_http_types_future_result_option_own_trailers_error_code_t in_trailers;
    wasi_http_types_future_result_void_error_code_writer_t in_result;
    // /fetch: the call under way, its answer, and the outgoing request's trailers (none).
    bool fetching, out_trailers_open;
    wasi_http_client_result_own_response_error_code_t fetched;
    wasi_http_types_future_result_option_own_trailers_error_code_writer_t out_trailers;
    // /gather: how many must arrive, and whether this request waits for the clock.
    uint32_t gather;
    bool sleeping;
};

// The request whose task runs now (set on every entry from its task's context).
static struct request *st;
static struct request *spare;
// /gather requests that arrived in this instance.
static uint32_t gathered;

static struct request *request_new(void) {
    struct request *r = spare;
    if (r) spare = r->next_spare;
    else r = malloc(sizeof *r);
    if (!r) __builtin_trap();
    memset(r, 0, sizeof *r);
    return r;
}

static void written(bindings_waitable_status_t status) {
    st->off += BINDINGS_WAITABLE_COUNT(status);
    if (st->off >= st->len) st->len = st->off = 0;
    if (BINDINGS_WAITABLE_STATE(status) == BINDINGS_WAITABLE_DROPPED) st->in_done = true, st->len = 0;
}

static void read_(bindings_waitable_status_t status) {
    st->len = BINDINGS_WAITABLE_COUNT(status);
    st->off = 0;
    if (BINDINGS_WAITABLE_STATE(status) == BINDINGS_WAITABLE_DROPPED) st->in_done = true;
}

static void out_trailers_written(bindings_waitable_status_t status) {
    if (status == BLOCKED) {
        bindings_waitable_join(st->out_trailers, st->set);
        return;
    }
    wasi_http_types_future_result_option_own_trailers_error_code_drop_writable(st->out_trailers);
    st->out_trailers_open = false;
}

// Goes on until something blocks (then waits for it) or all is done (then exits).
static bindings_callback_code_t step(void) {
    if (st->fetching) return WAIT(st->set);
    while (st->responding && st->phase == 0) {
        if (st->len > st->off) {
            bindings_waitable_status_t s = wasi_http_types_stream_u8_write(st->body, st->buf + st->off, st->len - st->off);
            if (s == BLOCKED) {
                bindings_waitable_join(st->body, st->set);
                return WAIT(st->set);
            }
            written(s);
        } else if (st->echo && !st->in_done) {
            bindings_waitable_status_t s = wasi_http_types_stream_u8_read(st->in, st->buf, sizeof st->buf);
            if (s == BLOCKED) {
                bindings_waitable_join(st->in, st->set);
                return WAIT(st->set);
            }
            read_(s);
        } else {
            wasi_http_types_stream_u8_drop_writable(st->body);
            st->phase = st->echo ? 1 : 2;
        }
    }
    if (st->responding && st->phase == 1) {
        wasi_http_types_stream_u8_drop_readable(st->in);
        wasi_http_types_future_result_option_own_trailers_error_code_drop_readable(st->in_trailers);
        // A future's writer is written before it is dropped: the body was taken.
        wasi_http_types_result_void_error_code_t ok = {.is_err = false};
        st->phase = 2;
        if (wasi_http_types_future_result_void_error_code_write(st->in_result, &ok) == BLOCKED) {
            bindings_waitable_join(st->in_result, st->set);
            return WAIT(st->set);
        }
    }
    if (st->responding && st->phase == 2) {
        if (st->echo) wasi_http_types_future_result_void_error_code_drop_writable(st->in_result);
        wasi_http_types_result_option_own_trailers_error_code_t trailers = {.is_err = false};
        trailers.val.ok.is_some = st->with_trailers;
        if (st->with_trailers) {
            wasi_http_types_own_fields_t fields = wasi_http_types_constructor_fields();
            wasi_http_types_field_name_t name = {(uint8_t *)"x-wasmbox-trailer", 17};
            wasi_http_types_field_value_t value = {(uint8_t *)"wasi 0.3", 8};
            wasi_http_types_header_error_t err;
            wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(fields), &name, &value, &err);
            trailers.val.ok.val = fields;
        }
        st->phase = 3;
        if (wasi_http_types_future_result_option_own_trailers_error_code_write(st->trailers, &trailers) == BLOCKED) {
            bindings_waitable_join(st->trailers, st->set);
            return WAIT(st->set);
        }
    }
    if (st->responding && st->phase == 3) {
        wasi_http_types_future_result_option_own_trailers_error_code_drop_writable(st->trailers);
        st->responding = false;
    }
    if (st->out_trailers_open || st->sleeping) return WAIT(st->set);
    bindings_waitable_set_drop(st->set);
    st->next_spare = spare;
    spare = st;
    return BINDINGS_CALLBACK_CODE_EXIT;
}

static void append(const void *bytes, size_t n) {
    if (n > sizeof st->buf - st->len) n = sizeof st->buf - st->len;
    memcpy(st->buf + st->len, bytes, n);
    st->len += n;
}

// `v` in decimal at the end of `digits`; where it starts.
static size_t decimal(char digits[12], size_t v) {
    size_t i = 12;
    do digits[--i] = (char)('0' + v % 10); while (v /= 10);
    return i;
}

static void append_uint(uint32_t v) {
    char digits[12];
    size_t i = decimal(digits, v);
    append(digits + i, sizeof digits - i);
}

// Returns a response with `status` whose body is what `st->buf` holds (with its length) or,
// for /echo, what will stream through it; the body goes out in `step`.
static void respond(wasi_http_types_status_code_t status) {
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    if (!st->echo) {
        // Its length, so HTTP/1.1 clients need no chunked decoding.
        char digits[12];
        size_t i = decimal(digits, st->len);
        wasi_http_types_field_name_t name = {(uint8_t *)"content-length", 14};
        wasi_http_types_field_value_t value = {(uint8_t *)digits + i, sizeof digits - i};
        wasi_http_types_header_error_t err;
        wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name, &value, &err);
    }
    wasi_http_types_stream_u8_t contents = wasi_http_types_stream_u8_new(&st->body);
    wasi_http_types_future_result_option_own_trailers_error_code_t trailers =
        wasi_http_types_future_result_option_own_trailers_error_code_new(&st->trailers);
    wasi_http_types_tuple2_own_response_future_result_void_error_code_t made;
    wasi_http_types_static_response_new(headers, &contents, trailers, &made);
    // How the body's transmission ended: not needed here.
    wasi_http_types_future_result_void_error_code_drop_readable(made.f1);
    wasi_http_types_method_response_set_status_code(wasi_http_types_borrow_response(made.f0), status);
    exports_wasi_http_handler_result_own_response_error_code_t result = {.is_err = false};
    result.val.ok = made.f0;
    exports_wasi_http_handler_handle_return(result);
    st->responding = true;
}

// The upstream's answer came: it is ours, or a 502 saying why not.
static void fetched(void) {
    st->fetching = false;
    if (!st->fetched.is_err) {
        exports_wasi_http_handler_result_own_response_error_code_t result = {.is_err = false};
        result.val.ok = st->fetched.val.ok;
        exports_wasi_http_handler_handle_return(result);
        return;
    }
    if (st->fetched.val.err.tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED) {
        append("denied\n", 7);
    } else {
        append("error ", 6);
        append_uint(st->fetched.val.err.tag);
        append("\n", 1);
    }
    respond(502);
}

// /fetch/SCHEME/AUTHORITY/PATH: `target` is what follows /fetch/.
static void fetch(const uint8_t *target, size_t len) {
    const uint8_t *end = target + len, *slash = memchr(target, '/', len);
    if (!slash) slash = end;
    wasi_http_types_scheme_t scheme = {.tag = WASI_HTTP_TYPES_SCHEME_HTTP};
    if ((size_t)(slash - target) == 5 && !memcmp(target, "https", 5)) scheme.tag = WASI_HTTP_TYPES_SCHEME_HTTPS;
    const uint8_t *authority = slash < end ? slash + 1 : end;
    const uint8_t *path = memchr(authority, '/', (size_t)(end - authority));
    if (!path) path = end;

    wasi_http_types_future_result_option_own_trailers_error_code_t trailers =
        wasi_http_types_future_result_option_own_trailers_error_code_new(&st->out_trailers);
    wasi_http_types_tuple2_own_request_future_result_void_error_code_t made;
    wasi_http_types_static_request_new(wasi_http_types_constructor_fields(), NULL, trailers, NULL, &made);
    wasi_http_types_future_result_void_error_code_drop_readable(made.f1);
    wasi_http_types_borrow_request_t request = wasi_http_types_borrow_request(made.f0);
    bindings_string_t a = {(uint8_t *)authority, (size_t)(path - authority)};
    bindings_string_t p = {(uint8_t *)(path < end ? path : (const uint8_t *)"/"), path < end ? (size_t)(end - path) : 1};
    wasi_http_types_method_request_set_scheme(request, &scheme);
    wasi_http_types_method_request_set_authority(request, &a);
    wasi_http_types_method_request_set_path_with_query(request, &p);
    // No body, so no trailers either.
    st->out_trailers_open = true;
    wasi_http_types_result_option_own_trailers_error_code_t none = {.is_err = false};
    none.val.ok.is_some = false;
    out_trailers_written(wasi_http_types_future_result_option_own_trailers_error_code_write(st->out_trailers, &none));

    bindings_subtask_status_t call = wasi_http_client_send(made.f0, &st->fetched);
    if (BINDINGS_SUBTASK_STATE(call) == BINDINGS_SUBTASK_RETURNED) {
        fetched();
    } else {
        st->fetching = true;
        bindings_waitable_join(BINDINGS_SUBTASK_HANDLE(call), st->set);
    }
}

// Waits for the clock (2 ms) unless it returned at once.
static void sleep_briefly(void) {
    bindings_subtask_status_t sleeping = wasi_clocks_monotonic_clock_wait_for(2000000ull);
    if (BINDINGS_SUBTASK_STATE(sleeping) == BINDINGS_SUBTASK_RETURNED) return;
    st->sleeping = true;
    bindings_waitable_join(BINDINGS_SUBTASK_HANDLE(sleeping), st->set);
}

// /gather: answers once enough have arrived, else looks again after a while.
static void gather_step(void) {
    while (!st->sleeping && gathered < st->gather) sleep_briefly();
    if (!st->sleeping) respond(200);
}

static bool is(const bindings_string_t *path, const char *what) {
    return path->len == strlen(what) && !memcmp(path->ptr, what, path->len);
}

bindings_callback_code_t exports_wasi_http_handler_handle(exports_wasi_http_handler_own_request_t request) {
    st = request_new();
    bindings_context_set_0(st);
    st->set = bindings_waitable_set_new();
    bindings_string_t path = {(uint8_t *)"/", 1};
    bool have_path = wasi_http_types_method_request_get_path_with_query(wasi_http_types_borrow_request(request), &path);
    if (is(&path, "/trap")) __builtin_trap();
    if (is(&path, "/hang")) {
        bindings_subtask_status_t sleeping = wasi_clocks_monotonic_clock_wait_for(3600ull * 1000000000ull);
        if (BINDINGS_SUBTASK_STATE(sleeping) != BINDINGS_SUBTASK_RETURNED) {
            bindings_waitable_join(BINDINGS_SUBTASK_HANDLE(sleeping), st->set);
            return WAIT(st->set);
        }
    }
    if (is(&path, "/echo")) {
        st->echo = true;
        wasi_http_types_future_result_void_error_code_t result = wasi_http_types_future_result_void_error_code_new(&st->in_result);
        wasi_http_types_tuple2_stream_u8_future_result_option_own_trailers_error_code_t body;
        wasi_http_types_static_request_consume_body(request, result, &body);
        st->in = body.f0;
        st->in_trailers = body.f1;
        respond(200);
    } else if (path.len > 8 && !memcmp(path.ptr, "/gather/", 8)) {
        wasi_http_types_request_drop_own(request);
        for (size_t i = 8; i < path.len && path.ptr[i] >= '0' && path.ptr[i] <= '9'; i++)
            st->gather = st->gather * 10 + (uint32_t)(path.ptr[i] - '0');
        gathered++;
        append("hello ", 6);
        append(path.ptr, path.len < sizeof st->buf - 64 ? path.len : sizeof st->buf - 64);
        append("\n", 1);
        gather_step();
    } else if (path.len > 7 && !memcmp(path.ptr, "/fetch/", 7)) {
        wasi_http_types_request_drop_own(request);
        fetch(path.ptr + 7, path.len - 7);
    } else {
        st->with_trailers = is(&path, "/trailers");
        wasi_http_types_request_drop_own(request);
        append("hello ", 6);
        append(path.ptr, path.len < sizeof st->buf - 64 ? path.len : sizeof st->buf - 64);
        append("\n", 1);
        respond(200);
    }
    if (have_path) bindings_string_free(&path);
    return step();
}

bindings_callback_code_t exports_wasi_http_handler_handle_callback(bindings_event_t *event) {
    st = bindings_context_get_0();
    bindings_waitable_join(event->waitable, 0);
    switch (event->event) {
    case BINDINGS_EVENT_STREAM_WRITE: written(event->code); break;
    case BINDINGS_EVENT_STREAM_READ: read_(event->code); break;
    case BINDINGS_EVENT_FUTURE_WRITE:
        if (st->out_trailers_open && event->waitable == st->out_trailers) out_trailers_written(event->code);
        break;
    case BINDINGS_EVENT_SUBTASK:
        if (BINDINGS_SUBTASK_STATE(event->code) != BINDINGS_SUBTASK_RETURNED) break;
        bindings_subtask_drop(event->waitable);
        if (st->fetching) {
            fetched();
        } else if (st->sleeping) {
            st->sleeping = false;
            gather_step();
        }
        break;
    default: break;
    }
    return step();
}
