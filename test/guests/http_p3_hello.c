// A WASI 0.3 HTTP handler (`wasi:http/service@0.3.0`) in C, on bindings from wit-bindgen-c:
// answers "hello <path>\n", as the 0.2 `http_hello` does; `/echo` streams the request's body
// back as the response's, 64 KiB at a time (memory stays flat whatever the size); `/trap`
// traps, and `/hang` answers only after an hour (it waits on wasi:clocks' `wait-for`).
//
// `handle` is async (the callback form): it returns the response at once, then moves the body
// through its streams and ends the trailers' and the request body's futures, waiting for the
// host whenever an operation blocks, and exits.
#include <stdint.h>
#include <string.h>

#include "bindings.h"

#define BLOCKED BINDINGS_WAITABLE_STATUS_BLOCKED
#define WAIT(set) BINDINGS_CALLBACK_CODE_WAIT(set)

// One request per instance: the handler's state is the instance's.
static struct {
    bindings_waitable_set_t set;
    // The response's body and trailers.
    wasi_http_types_stream_u8_writer_t body;
    wasi_http_types_future_result_option_own_trailers_error_code_writer_t trailers;
    // For /echo: the request's body, its trailers, and how its consumption ended.
    bool echo;
    wasi_http_types_stream_u8_t in;
    wasi_http_types_future_result_option_own_trailers_error_code_t in_trailers;
    wasi_http_types_future_result_void_error_code_writer_t in_result;
    bool in_done;
    uint8_t buf[65536];
    size_t len, off;
    // 0: moving the body; 1: ending the request's future; 2: the trailers; 3: done.
    int phase;
} st;

static void written(bindings_waitable_status_t status) {
    st.off += BINDINGS_WAITABLE_COUNT(status);
    if (st.off >= st.len) st.len = st.off = 0;
    if (BINDINGS_WAITABLE_STATE(status) == BINDINGS_WAITABLE_DROPPED) st.in_done = true, st.len = 0;
}

static void read_(bindings_waitable_status_t status) {
    st.len = BINDINGS_WAITABLE_COUNT(status);
    st.off = 0;
    if (BINDINGS_WAITABLE_STATE(status) == BINDINGS_WAITABLE_DROPPED) st.in_done = true;
}

// Goes on until something blocks (then waits for it) or all is done (then exits).
static bindings_callback_code_t step(void) {
    while (st.phase == 0) {
        if (st.len > st.off) {
            bindings_waitable_status_t s = wasi_http_types_stream_u8_write(st.body, st.buf + st.off, st.len - st.off);
            if (s == BLOCKED) {
                bindings_waitable_join(st.body, st.set);
                return WAIT(st.set);
            }
            written(s);
        } else if (st.echo && !st.in_done) {
            bindings_waitable_status_t s = wasi_http_types_stream_u8_read(st.in, st.buf, sizeof st.buf);
            if (s == BLOCKED) {
                bindings_waitable_join(st.in, st.set);
                return WAIT(st.set);
            }
            read_(s);
        } else {
            wasi_http_types_stream_u8_drop_writable(st.body);
            st.phase = st.echo ? 1 : 2;
        }
    }
    if (st.phase == 1) {
        wasi_http_types_stream_u8_drop_readable(st.in);
        wasi_http_types_future_result_option_own_trailers_error_code_drop_readable(st.in_trailers);
        // A future's writer is written before it is dropped: the body was taken.
        wasi_http_types_result_void_error_code_t ok = {.is_err = false};
        st.phase = 2;
        if (wasi_http_types_future_result_void_error_code_write(st.in_result, &ok) == BLOCKED) {
            bindings_waitable_join(st.in_result, st.set);
            return WAIT(st.set);
        }
    }
    if (st.phase == 2) {
        if (st.echo) wasi_http_types_future_result_void_error_code_drop_writable(st.in_result);
        wasi_http_types_result_option_own_trailers_error_code_t none = {.is_err = false};
        none.val.ok.is_some = false;
        st.phase = 3;
        if (wasi_http_types_future_result_option_own_trailers_error_code_write(st.trailers, &none) == BLOCKED) {
            bindings_waitable_join(st.trailers, st.set);
            return WAIT(st.set);
        }
    }
    wasi_http_types_future_result_option_own_trailers_error_code_drop_writable(st.trailers);
    bindings_waitable_set_drop(st.set);
    return BINDINGS_CALLBACK_CODE_EXIT;
}

static bool is(const bindings_string_t *path, const char *what) {
    return path->len == strlen(what) && !memcmp(path->ptr, what, path->len);
}

bindings_callback_code_t exports_wasi_http_handler_handle(exports_wasi_http_handler_own_request_t request) {
    static const char hello[] = "hello ";
    st.set = bindings_waitable_set_new();
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    bindings_string_t path = {(uint8_t *)"/", 1};
    bool have_path = wasi_http_types_method_request_get_path_with_query(wasi_http_types_borrow_request(request), &path);
    if (is(&path, "/trap")) __builtin_trap();
    if (is(&path, "/hang")) {
        bindings_subtask_status_t sleeping = wasi_clocks_monotonic_clock_wait_for(3600ull * 1000000000ull);
        if (BINDINGS_SUBTASK_STATE(sleeping) != BINDINGS_SUBTASK_RETURNED) {
            bindings_waitable_join(BINDINGS_SUBTASK_HANDLE(sleeping), st.set);
            return WAIT(st.set);
        }
    }
    if (is(&path, "/echo")) {
        st.echo = true;
        wasi_http_types_future_result_void_error_code_t result = wasi_http_types_future_result_void_error_code_new(&st.in_result);
        wasi_http_types_tuple2_stream_u8_future_result_option_own_trailers_error_code_t body;
        wasi_http_types_static_request_consume_body(request, result, &body);
        st.in = body.f0;
        st.in_trailers = body.f1;
    } else {
        memcpy(st.buf, hello, sizeof hello - 1);
        st.len = sizeof hello - 1;
        size_t n = path.len < sizeof st.buf - st.len - 1 ? path.len : sizeof st.buf - st.len - 1;
        memcpy(st.buf + st.len, path.ptr, n);
        st.len += n;
        st.buf[st.len++] = '\n';
        wasi_http_types_request_drop_own(request);
        // Its length, so HTTP/1.1 clients need no chunked decoding.
        char digits[12];
        size_t i = sizeof digits;
        for (size_t v = st.len; i == sizeof digits || v; v /= 10) digits[--i] = (char)('0' + v % 10);
        wasi_http_types_field_name_t name = {(uint8_t *)"content-length", 14};
        wasi_http_types_field_value_t value = {(uint8_t *)digits + i, sizeof digits - i};
        wasi_http_types_header_error_t err;
        wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name, &value, &err);
    }
    if (have_path) bindings_string_free(&path);

    wasi_http_types_stream_u8_t contents = wasi_http_types_stream_u8_new(&st.body);
    wasi_http_types_future_result_option_own_trailers_error_code_t trailers =
        wasi_http_types_future_result_option_own_trailers_error_code_new(&st.trailers);
    wasi_http_types_tuple2_own_response_future_result_void_error_code_t made;
    wasi_http_types_static_response_new(headers, &contents, trailers, &made);
    // How the body's transmission ended: not needed here.
    wasi_http_types_future_result_void_error_code_drop_readable(made.f1);
    exports_wasi_http_handler_result_own_response_error_code_t result = {.is_err = false};
    result.val.ok = made.f0;
    exports_wasi_http_handler_handle_return(result);
    return step();
}

bindings_callback_code_t exports_wasi_http_handler_handle_callback(bindings_event_t *event) {
    bindings_waitable_join(event->waitable, 0);
    if (event->event == BINDINGS_EVENT_STREAM_WRITE) written(event->code);
    if (event->event == BINDINGS_EVENT_STREAM_READ) read_(event->code);
    return step();
}
