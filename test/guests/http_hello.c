// A wasi:http/proxy handler: answers every request with 200 and `hello <path>\n` (with a
// Content-Length), and prints one line per request on stdout, which must reach the container's
// log; a path starting with /trap traps instead, /sleep/MS sleeps MS milliseconds first. Built against C bindings that wit-bindgen-c generates in the test (test/src/guests.rs).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bindings.h"

static bindings_string_t str(const char *s) {
    bindings_string_t r = {(uint8_t *)s, strlen(s)};
    return r;
}

void exports_wasi_http_incoming_handler_handle(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                                               exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    bindings_string_t path = {0};
    wasi_http_types_method_incoming_request_path_with_query(wasi_http_types_borrow_incoming_request(request), &path);
    char body[1200];
    int n = snprintf(body, sizeof body, "hello %.*s\n", (int)(path.len > 1024 ? 1024 : path.len), (const char *)path.ptr);
    // One write per line: instances run at once and share the container's stdout.
    char line[1100];
    int len = snprintf(line, sizeof line, "request %.*s\n", (int)(path.len > 1024 ? 1024 : path.len), (const char *)path.ptr);
    write(1, line, (size_t)(len < (int)sizeof line ? len : (int)sizeof line - 1));
    if (path.len >= 5 && memcmp(path.ptr, "/trap", 5) == 0) {
        __builtin_trap();
    }
    if (path.len > 7 && memcmp(path.ptr, "/sleep/", 7) == 0) {
        char ms[16] = {0};
        memcpy(ms, path.ptr + 7, path.len - 7 < 15 ? path.len - 7 : 15);
        usleep((useconds_t)atoi(ms) * 1000);
    }

    char length[16];
    snprintf(length, sizeof length, "%d", n);
    bindings_tuple2_field_name_field_value_t header = {
        .f0 = str("content-length"),
        .f1 = {(uint8_t *)length, strlen(length)},
    };
    bindings_list_tuple2_field_name_field_value_t list = {&header, 1};
    wasi_http_types_own_fields_t fields;
    wasi_http_types_header_error_t header_error;
    if (!wasi_http_types_static_fields_from_list(&list, &fields, &header_error)) {
        fields = wasi_http_types_constructor_fields();
    }

    wasi_http_types_own_outgoing_response_t response = wasi_http_types_constructor_outgoing_response(fields);
    wasi_http_types_own_outgoing_body_t outgoing;
    wasi_http_types_method_outgoing_response_body(wasi_http_types_borrow_outgoing_response(response), &outgoing);

    wasi_http_types_result_own_outgoing_response_error_code_t result = {.is_err = false, .val = {.ok = response}};
    wasi_http_types_static_response_outparam_set(response_out, &result);

    wasi_http_types_own_output_stream_t stream;
    if (wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(outgoing), &stream)) {
        bindings_list_u8_t bytes = {(uint8_t *)body, (size_t)n};
        wasi_io_streams_stream_error_t stream_error;
        wasi_io_streams_method_output_stream_blocking_write_and_flush(wasi_io_streams_borrow_output_stream(stream), &bytes,
                                                                     &stream_error);
        wasi_io_streams_output_stream_drop_own(stream);
    }
    wasi_http_types_error_code_t error;
    wasi_http_types_static_outgoing_body_finish(outgoing, NULL, &error);
    bindings_string_free(&path);
}
