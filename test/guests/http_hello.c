// A wasi:http/proxy handler: answers every request with 200 and `hello <path>\n` (with a
// Content-Length), and prints one line per request on stdout, which must reach the container's
// log; a path starting with /trap traps instead, /sleep/MS sleeps MS milliseconds first.
// /echo streams the request's body back as the response's, 64 KiB at a time (memory stays
// constant: each chunk is freed before the next is read). /fetch/SCHEME/AUTHORITY/PATH sends
// GET SCHEME://AUTHORITY/PATH through wasi:http/outgoing-handler and answers 200 with
// `upstream <status> <body>`, or 502 with `denied` (HTTP-request-denied) or `error <tag>`.
// Built against C bindings that wit-bindgen-c generates in the test (test/src/guests.rs).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bindings.h"

static bindings_string_t str(const char *s) {
    bindings_string_t r = {(uint8_t *)s, strlen(s)};
    return r;
}

// Fields with a Content-Length of `length`, or none when negative (the body is chunked).
static wasi_http_types_own_fields_t length_fields(long length) {
    wasi_http_types_own_fields_t fields;
    if (length < 0)
        return wasi_http_types_constructor_fields();
    char value[24];
    snprintf(value, sizeof value, "%ld", length);
    bindings_tuple2_field_name_field_value_t header = {
        .f0 = str("content-length"),
        .f1 = {(uint8_t *)value, strlen(value)},
    };
    bindings_list_tuple2_field_name_field_value_t list = {&header, 1};
    wasi_http_types_header_error_t header_error;
    if (!wasi_http_types_static_fields_from_list(&list, &fields, &header_error))
        __builtin_trap();
    return fields;
}

// Sets a response with `status` (and a Content-Length unless `length` is negative) on
// `response_out`; its body's stream.
static wasi_io_streams_own_output_stream_t start_response(exports_wasi_http_incoming_handler_own_response_outparam_t response_out,
                                                          uint16_t status, long length, wasi_http_types_own_outgoing_body_t *body) {
    wasi_http_types_own_outgoing_response_t response = wasi_http_types_constructor_outgoing_response(length_fields(length));
    wasi_http_types_method_outgoing_response_set_status_code(wasi_http_types_borrow_outgoing_response(response), status);
    wasi_http_types_method_outgoing_response_body(wasi_http_types_borrow_outgoing_response(response), body);
    wasi_http_types_result_own_outgoing_response_error_code_t result = {.is_err = false, .val = {.ok = response}};
    wasi_http_types_static_response_outparam_set(response_out, &result);
    wasi_io_streams_own_output_stream_t stream;
    if (!wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(*body), &stream))
        __builtin_trap();
    return stream;
}

static void finish(wasi_io_streams_own_output_stream_t stream, wasi_http_types_own_outgoing_body_t body) {
    wasi_io_streams_output_stream_drop_own(stream);
    wasi_http_types_error_code_t error;
    wasi_http_types_static_outgoing_body_finish(body, NULL, &error);
}

static void write_all(wasi_io_streams_own_output_stream_t stream, const uint8_t *data, size_t len) {
    wasi_io_streams_stream_error_t error;
    // blocking-write-and-flush takes at most 4096 bytes at a time.
    for (size_t off = 0; off < len; off += 4096) {
        size_t n = len - off < 4096 ? len - off : 4096;
        bindings_list_u8_t bytes = {(uint8_t *)data + off, n};
        if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(wasi_io_streams_borrow_output_stream(stream), &bytes, &error))
            __builtin_trap();
    }
}

// Reads `input` to its end, each chunk passed to `sink` (or dropped when NULL); the bytes read.
static uint64_t drain(wasi_io_streams_own_input_stream_t input, wasi_io_streams_own_output_stream_t *sink) {
    uint64_t total = 0;
    for (;;) {
        bindings_list_u8_t chunk;
        wasi_io_streams_stream_error_t error;
        if (!wasi_io_streams_method_input_stream_blocking_read(wasi_io_streams_borrow_input_stream(input), 65536, &chunk, &error))
            break; // closed: the end of the body
        if (sink)
            write_all(*sink, chunk.ptr, chunk.len);
        total += chunk.len;
        bindings_list_u8_free(&chunk);
    }
    return total;
}

static void echo(exports_wasi_http_incoming_handler_own_incoming_request_t request,
                 exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    wasi_http_types_own_incoming_body_t in_body;
    if (!wasi_http_types_method_incoming_request_consume(wasi_http_types_borrow_incoming_request(request), &in_body))
        __builtin_trap();
    wasi_io_streams_own_input_stream_t input;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(in_body), &input))
        __builtin_trap();
    wasi_http_types_own_outgoing_body_t out_body;
    wasi_io_streams_own_output_stream_t output = start_response(response_out, 200, -1, &out_body);
    uint64_t total = drain(input, &output);
    wasi_io_streams_input_stream_drop_own(input);
    wasi_http_types_incoming_body_drop_own(in_body);
    finish(output, out_body);
    char line[64];
    int len = snprintf(line, sizeof line, "echoed %llu bytes\n", (unsigned long long)total);
    write(1, line, (size_t)len);
}

static void answer(exports_wasi_http_incoming_handler_own_response_outparam_t response_out, uint16_t status, const char *text, size_t len) {
    wasi_http_types_own_outgoing_body_t body;
    wasi_io_streams_own_output_stream_t stream = start_response(response_out, status, (long)len, &body);
    write_all(stream, (const uint8_t *)text, len);
    finish(stream, body);
}

// /fetch/SCHEME/AUTHORITY/PATH (path and len without the /fetch/ prefix).
static void fetch(const char *target, size_t len, exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    const char *slash = memchr(target, '/', len);
    if (!slash)
        __builtin_trap();
    const char *authority = slash + 1;
    const char *end = target + len;
    const char *path = memchr(authority, '/', (size_t)(end - authority));
    if (!path)
        path = end;
    wasi_http_types_own_outgoing_request_t req = wasi_http_types_constructor_outgoing_request(wasi_http_types_constructor_fields());
    wasi_http_types_borrow_outgoing_request_t r = wasi_http_types_borrow_outgoing_request(req);
    wasi_http_types_scheme_t scheme = {.tag = (slash - target == 5 && memcmp(target, "https", 5) == 0) ? WASI_HTTP_TYPES_SCHEME_HTTPS
                                                                                                       : WASI_HTTP_TYPES_SCHEME_HTTP};
    wasi_http_types_method_outgoing_request_set_scheme(r, &scheme);
    bindings_string_t auth = {(uint8_t *)authority, (size_t)(path - authority)};
    wasi_http_types_method_outgoing_request_set_authority(r, &auth);
    bindings_string_t p = {(uint8_t *)(path < end ? path : "/"), path < end ? (size_t)(end - path) : 1};
    wasi_http_types_method_outgoing_request_set_path_with_query(r, &p);

    char text[600];
    int n;
    wasi_http_outgoing_handler_own_future_incoming_response_t future;
    wasi_http_outgoing_handler_error_code_t error;
    if (!wasi_http_outgoing_handler_handle(req, NULL, &future, &error)) {
        n = error.tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED ? snprintf(text, sizeof text, "denied\n")
                                                                         : snprintf(text, sizeof text, "error %d\n", error.tag);
        answer(response_out, 502, text, (size_t)n);
        return;
    }
    wasi_io_poll_own_pollable_t ready =
        wasi_http_types_method_future_incoming_response_subscribe(wasi_http_types_borrow_future_incoming_response(future));
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
    wasi_io_poll_pollable_drop_own(ready);
    wasi_http_types_result_result_own_incoming_response_error_code_void_t got;
    if (!wasi_http_types_method_future_incoming_response_get(wasi_http_types_borrow_future_incoming_response(future), &got) || got.is_err)
        __builtin_trap();
    if (got.val.ok.is_err) {
        wasi_http_types_error_code_t *e = &got.val.ok.val.err;
        n = e->tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED ? snprintf(text, sizeof text, "denied\n")
                                                                      : snprintf(text, sizeof text, "error %d\n", e->tag);
        answer(response_out, 502, text, (size_t)n);
        return;
    }
    wasi_http_types_own_incoming_response_t response = got.val.ok.val.ok;
    uint16_t status = wasi_http_types_method_incoming_response_status(wasi_http_types_borrow_incoming_response(response));
    wasi_http_types_own_incoming_body_t body;
    if (!wasi_http_types_method_incoming_response_consume(wasi_http_types_borrow_incoming_response(response), &body))
        __builtin_trap();
    wasi_io_streams_own_input_stream_t input;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body), &input))
        __builtin_trap();
    n = snprintf(text, sizeof text, "upstream %u ", status);
    // The upstream's body, up to what fits.
    for (;;) {
        bindings_list_u8_t chunk;
        wasi_io_streams_stream_error_t serr;
        if (!wasi_io_streams_method_input_stream_blocking_read(wasi_io_streams_borrow_input_stream(input), sizeof text - 1 - (size_t)n, &chunk, &serr))
            break;
        memcpy(text + n, chunk.ptr, chunk.len);
        n += (int)chunk.len;
        bindings_list_u8_free(&chunk);
        if ((size_t)n >= sizeof text - 1)
            break;
    }
    wasi_io_streams_input_stream_drop_own(input);
    wasi_http_types_incoming_body_drop_own(body);
    answer(response_out, 200, text, (size_t)n);
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
    if (path.len == 5 && memcmp(path.ptr, "/echo", 5) == 0) {
        echo(request, response_out);
        bindings_string_free(&path);
        return;
    }
    if (path.len > 7 && memcmp(path.ptr, "/fetch/", 7) == 0) {
        fetch((const char *)path.ptr + 7, path.len - 7, response_out);
        bindings_string_free(&path);
        return;
    }
    if (path.len >= 5 && memcmp(path.ptr, "/trap", 5) == 0) {
        __builtin_trap();
    }
    if (path.len > 7 && memcmp(path.ptr, "/sleep/", 7) == 0) {
        char ms[16] = {0};
        memcpy(ms, path.ptr + 7, path.len - 7 < 15 ? path.len - 7 : 15);
        usleep((useconds_t)atoi(ms) * 1000);
    }

    answer(response_out, 200, body, (size_t)n);
    bindings_string_free(&path);
}
