// A WASI 0.3 command (`wasi:cli/command@0.3.0`) in C, on bindings from wit-bindgen-c: every
// call to the host goes through a 0.3 interface (args, environment, stdout as a stream<u8>,
// files through a descriptor's stream, exit). It prints "arg[i]=..." for each argument and
// "env NAME=VALUE" for its whole environment, then runs the arguments that are operations:
//   preopens     "preopens ok NAME,NAME..." (the directories it was given)
//   write:PATH   writes a line to PATH, below the preopen whose name is its longest prefix:
//                "write:PATH ok", "write:PATH err <error-code>" or "write:PATH err no preopen"
//   isatty       "isatty: I O E": 1 for each of stdin, stdout, stderr that is a terminal
//   read-line    reads stdin to its first newline (or its end): "got: LINE"
//   exit:N       exits with status N (after flushing what it printed)
#include <stdint.h>
#include <string.h>

#include "bindings.h"

static uint8_t out[65536];
static size_t out_len;

static void put(const char *s, size_t n) {
    if (n > sizeof out - out_len) n = sizeof out - out_len;
    memcpy(out + out_len, s, n);
    out_len += n;
}

static void puts_(const char *s) { put(s, strlen(s)); }

static void put_string(const bindings_string_t *s) { put((const char *)s->ptr, s->len); }

static void put_uint(uint32_t v) {
    char buf[12];
    size_t i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(buf + i, sizeof buf - i);
}

// Blocks until `waitable` has an event, and returns it.
static bindings_event_t wait_for(uint32_t waitable) {
    bindings_event_t event;
    bindings_waitable_set_t set = bindings_waitable_set_new();
    bindings_waitable_join(waitable, set);
    bindings_waitable_set_wait(set, &event);
    bindings_waitable_join(waitable, 0);
    bindings_waitable_set_drop(set);
    return event;
}

// The status of a stream or future operation, waited for when it blocked.
static bindings_waitable_status_t settle(uint32_t handle, bindings_waitable_status_t status) {
    if (status == BINDINGS_WAITABLE_STATUS_BLOCKED) return wait_for(handle).code;
    return status;
}

// A stream<u8> type's `write` (each stream type has its own, of the same shape).
typedef bindings_waitable_status_t (*stream_write_t)(uint32_t writer, const uint8_t *buf, size_t amt);

// Writes all of `buf` through `writer`, waiting whenever the reader has not taken it yet; stops
// early if the reader is gone.
static void write_all(uint32_t writer, stream_write_t write, const uint8_t *buf, size_t len) {
    while (len > 0) {
        bindings_waitable_status_t st = settle(writer, write(writer, buf, len));
        uint32_t n = BINDINGS_WAITABLE_COUNT(st);
        buf += n;
        len -= n;
        if (BINDINGS_WAITABLE_STATE(st) == BINDINGS_WAITABLE_DROPPED) break;
    }
}

// Writes all of `buf` to stdout through a fresh stream; waits for the write's result.
static void write_stdout(const uint8_t *buf, size_t len) {
    wasi_cli_stdin_stream_u8_writer_t writer;
    wasi_cli_stdin_stream_u8_t reader = wasi_cli_stdin_stream_u8_new(&writer);
    wasi_cli_stdout_future_result_void_error_code_t done = wasi_cli_stdout_write_via_stream(reader);
    write_all(writer, wasi_cli_stdin_stream_u8_write, buf, len);
    wasi_cli_stdin_stream_u8_drop_writable(writer);
    wasi_cli_stdout_result_void_error_code_t result;
    settle(done, wasi_cli_stdout_future_result_void_error_code_read(done, &result));
    wasi_cli_stdout_future_result_void_error_code_drop_readable(done);
}

static void flush(void) {
    write_stdout(out, out_len);
    out_len = 0;
}

static void put_fs_error(const wasi_filesystem_types_error_code_t *e) {
    switch (e->tag) {
    case WASI_FILESYSTEM_TYPES_ERROR_CODE_READ_ONLY: puts_("read-only"); break;
    case WASI_FILESYSTEM_TYPES_ERROR_CODE_IO: puts_("io"); break;
    default: puts_("error-code "); put_uint(e->tag);
    }
}

// Whether preopen `name` holds `path`; the rest of the path below it.
static const char *below(const bindings_string_t *name, const char *path) {
    size_t n = name->len;
    if (n == 1 && name->ptr[0] == '/') return path;
    if (strncmp(path, (const char *)name->ptr, n) || (path[n] && path[n] != '/')) return NULL;
    return path + n;
}

static void op_preopens(const char *op) {
    wasi_filesystem_preopens_list_tuple2_own_descriptor_string_t dirs;
    wasi_filesystem_preopens_get_directories(&dirs);
    puts_(op);
    puts_(" ok ");
    for (size_t i = 0; i < dirs.len; i++) {
        if (i) puts_(",");
        put_string(&dirs.ptr[i].f1);
    }
    puts_("\n");
}

static void op_write(const char *op, const char *path) {
    static const char line[] = "written by wasi 0.3\n";
    puts_(op);
    wasi_filesystem_preopens_list_tuple2_own_descriptor_string_t dirs;
    wasi_filesystem_preopens_get_directories(&dirs);
    wasi_filesystem_types_own_descriptor_t *root = NULL;
    const char *rest = NULL;
    size_t best = 0;
    for (size_t i = 0; i < dirs.len; i++) {
        const char *r = below(&dirs.ptr[i].f1, path);
        if (r && (!root || dirs.ptr[i].f1.len > best)) root = &dirs.ptr[i].f0, rest = r, best = dirs.ptr[i].f1.len;
    }
    if (!root) {
        puts_(" err no preopen\n");
        return;
    }
    path = rest;
    while (*path == '/') path++;
    bindings_string_t name = {(uint8_t *)path, strlen(path)};
    wasi_filesystem_types_own_descriptor_t file;
    wasi_filesystem_types_error_code_t err;
    if (!wasi_filesystem_types_method_descriptor_open_at(
            wasi_filesystem_types_borrow_descriptor(*root), 0, &name,
            WASI_FILESYSTEM_TYPES_OPEN_FLAGS_CREATE | WASI_FILESYSTEM_TYPES_OPEN_FLAGS_TRUNCATE,
            WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_WRITE, &file, &err)) {
        puts_(" err ");
        put_fs_error(&err);
        puts_("\n");
        return;
    }
    wasi_filesystem_types_stream_u8_writer_t writer;
    wasi_filesystem_types_stream_u8_t reader = wasi_filesystem_types_stream_u8_new(&writer);
    wasi_filesystem_types_future_result_void_error_code_t done =
        wasi_filesystem_types_method_descriptor_write_via_stream(wasi_filesystem_types_borrow_descriptor(file), reader, 0);
    write_all(writer, wasi_filesystem_types_stream_u8_write, (const uint8_t *)line, sizeof line - 1);
    wasi_filesystem_types_stream_u8_drop_writable(writer);
    wasi_filesystem_types_result_void_error_code_t result;
    settle(done, wasi_filesystem_types_future_result_void_error_code_read(done, &result));
    wasi_filesystem_types_future_result_void_error_code_drop_readable(done);
    wasi_filesystem_types_descriptor_drop_own(file);
    if (result.is_err) {
        puts_(" err ");
        put_fs_error(&result.val.err);
        puts_("\n");
    } else {
        puts_(" ok\n");
    }
}

static void op_isatty(void) {
    wasi_cli_terminal_stdin_own_terminal_input_t in;
    wasi_cli_terminal_stdout_own_terminal_output_t out_;
    wasi_cli_terminal_stderr_own_terminal_output_t err;
    bool i = wasi_cli_terminal_stdin_get_terminal_stdin(&in);
    bool o = wasi_cli_terminal_stdout_get_terminal_stdout(&out_);
    bool e = wasi_cli_terminal_stderr_get_terminal_stderr(&err);
    if (i) wasi_cli_terminal_input_terminal_input_drop_own(in);
    if (o) wasi_cli_terminal_output_terminal_output_drop_own(out_);
    if (e) wasi_cli_terminal_output_terminal_output_drop_own(err);
    puts_("isatty: ");
    put_uint(i);
    puts_(" ");
    put_uint(o);
    puts_(" ");
    put_uint(e);
    puts_("\n");
}

static void op_read_line(void) {
    // What was printed so far shows before the guest waits for input.
    flush();
    wasi_cli_stdin_tuple2_stream_u8_future_result_void_error_code_t in;
    wasi_cli_stdin_read_via_stream(&in);
    char line[256];
    size_t len = 0;
    bool done = false;
    while (!done && len < sizeof line) {
        uint8_t c;
        bindings_waitable_status_t st = settle(in.f0, wasi_cli_stdin_stream_u8_read(in.f0, &c, 1));
        if (BINDINGS_WAITABLE_COUNT(st) == 1) {
            if (c == '\n' || c == '\r') done = true;
            else line[len++] = (char)c;
        }
        if (BINDINGS_WAITABLE_STATE(st) == BINDINGS_WAITABLE_DROPPED) done = true;
    }
    wasi_cli_stdin_stream_u8_drop_readable(in.f0);
    wasi_cli_stdout_future_result_void_error_code_drop_readable(in.f1);
    puts_("got: ");
    put(line, len);
    puts_("\n");
}

bool exports_wasi_cli_run_run(void) {
    bindings_list_string_t args;
    wasi_cli_environment_get_arguments(&args);
    for (size_t i = 0; i < args.len; i++) {
        puts_("arg[");
        put_uint((uint32_t)i);
        puts_("]=");
        put_string(&args.ptr[i]);
        puts_("\n");
    }
    bindings_list_tuple2_string_string_t env;
    wasi_cli_environment_get_environment(&env);
    for (size_t i = 0; i < env.len; i++) {
        puts_("env ");
        put_string(&env.ptr[i].f0);
        puts_("=");
        put_string(&env.ptr[i].f1);
        puts_("\n");
    }
    for (size_t i = 1; i < args.len; i++) {
        // NUL-terminated copies: the bindings' strings are not.
        char op[512];
        size_t n = args.ptr[i].len < sizeof op - 1 ? args.ptr[i].len : sizeof op - 1;
        memcpy(op, args.ptr[i].ptr, n);
        op[n] = 0;
        if (!strcmp(op, "preopens")) {
            op_preopens(op);
        } else if (!strcmp(op, "isatty")) {
            op_isatty();
        } else if (!strcmp(op, "read-line")) {
            op_read_line();
        } else if (!strncmp(op, "write:", 6)) {
            op_write(op, op + 6);
        } else if (!strncmp(op, "exit:", 5)) {
            uint32_t code = 0;
            for (const char *p = op + 5; *p >= '0' && *p <= '9'; p++) code = code * 10 + (uint32_t)(*p - '0');
            flush();
            wasi_cli_exit_exit_with_code((uint8_t)code);
        }
    }
    flush();
    return true;
}
