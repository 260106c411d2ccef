// A WASI 0.3 HTTP handler (`wasi:http/service@0.3.0`) in C, on bindings from wit-bindgen-c:
// answers "hello <path>\n", as the 0.2 `http_hello` does; `/trap` traps, and `/hang` never
// answers (it waits on nothing, forever). `handle` is async (the callback form):
// it returns the response at once, then writes the body through its stream and the (empty)
// trailers through their future, waiting for the host to take each, and exits.
#include <stdint.h>
#include <string.h>

#include "bindings.h"

// One request per instance: the handler's state is the instance's.
static struct {
    wasi_http_types_stream_u8_writer_t body;
    wasi_http_types_future_result_option_own_trailers_error_code_writer_t trailers;
    bindings_waitable_set_t set;
    uint8_t buf[4096];
    size_t len, off;
    // 0: writing the body; 1: writing the trailers; 2: done.
    int phase;
} st;

static void body_written(bindings_waitable_status_t status) {
    st.off += BINDINGS_WAITABLE_COUNT(status);
    if (st.off >= st.len || BINDINGS_WAITABLE_STATE(status) == BINDINGS_WAITABLE_DROPPED) {
        wasi_http_types_stream_u8_drop_writable(st.body);
        st.phase = 1;
    }
}

// Goes on until something blocks (then waits for it) or all is written (then exits).
static bindings_callback_code_t step(void) {
    while (st.phase == 0) {
        bindings_waitable_status_t s = wasi_http_types_stream_u8_write(st.body, st.buf + st.off, st.len - st.off);
        if (s == BINDINGS_WAITABLE_STATUS_BLOCKED) {
            bindings_waitable_join(st.body, st.set);
            return BINDINGS_CALLBACK_CODE_WAIT(st.set);
        }
        body_written(s);
    }
    if (st.phase == 1) {
        // A future's writer must be written before it is dropped: no trailers.
        wasi_http_types_result_option_own_trailers_error_code_t none = {.is_err = false};
        none.val.ok.is_some = false;
        bindings_waitable_status_t s = wasi_http_types_future_result_option_own_trailers_error_code_write(st.trailers, &none);
        st.phase = 2;
        if (s == BINDINGS_WAITABLE_STATUS_BLOCKED) {
            bindings_waitable_join(st.trailers, st.set);
            return BINDINGS_CALLBACK_CODE_WAIT(st.set);
        }
    }
    wasi_http_types_future_result_option_own_trailers_error_code_drop_writable(st.trailers);
    bindings_waitable_set_drop(st.set);
    return BINDINGS_CALLBACK_CODE_EXIT;
}

bindings_callback_code_t exports_wasi_http_handler_handle(exports_wasi_http_handler_own_request_t request) {
    static const char hello[] = "hello ";
    memcpy(st.buf, hello, sizeof hello - 1);
    st.len = sizeof hello - 1;
    bindings_string_t path;
    if (wasi_http_types_method_request_get_path_with_query(wasi_http_types_borrow_request(request), &path)) {
        if (path.len == 5 && !memcmp(path.ptr, "/trap", 5)) __builtin_trap();
        if (path.len == 5 && !memcmp(path.ptr, "/hang", 5)) {
            st.set = bindings_waitable_set_new();
            return BINDINGS_CALLBACK_CODE_WAIT(st.set);
        }
        size_t n = path.len < sizeof st.buf - st.len - 1 ? path.len : sizeof st.buf - st.len - 1;
        memcpy(st.buf + st.len, path.ptr, n);
        st.len += n;
        bindings_string_free(&path);
    }
    st.buf[st.len++] = '\n';
    wasi_http_types_request_drop_own(request);

    // Its length, so HTTP/1.1 clients need no chunked decoding.
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    char digits[12];
    size_t i = sizeof digits;
    for (size_t v = st.len; i == sizeof digits || v; v /= 10) digits[--i] = (char)('0' + v % 10);
    wasi_http_types_field_name_t name = {(uint8_t *)"content-length", 14};
    wasi_http_types_field_value_t value = {(uint8_t *)digits + i, sizeof digits - i};
    wasi_http_types_header_error_t err;
    wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name, &value, &err);

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

    st.set = bindings_waitable_set_new();
    return step();
}

bindings_callback_code_t exports_wasi_http_handler_handle_callback(bindings_event_t *event) {
    bindings_waitable_join(event->waitable, 0);
    if (event->event == BINDINGS_EVENT_STREAM_WRITE) body_written(event->code);
    return step();
}
