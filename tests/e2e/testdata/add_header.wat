;; A minimal proxy-wasm (ABI 0.2.1) HTTP plugin, written by hand so the test needs no wasm
;; toolchain: it adds `x-wasm-plugin: flowplane` to every response and refuses requests that
;; carry `x-wasm-deny` with a local 403.
(module
  (import "env" "proxy_add_header_map_value"
    (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response"
    (func $send_local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 16)
  ;; A bump allocator above the constants; the host asks for a few bytes per call.
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "x-wasm-plugin")
  (data (i32.const 48) "flowplane")
  (data (i32.const 80) "x-wasm-deny")
  (data (i32.const 112) "denied by the wasm plugin")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.add (local.get $size) (i32.const 8))))
    (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; map 0 = request headers; the value's address and size land at 256 and 260.
    (if (i32.eqz (call $get_header (i32.const 0) (i32.const 80) (i32.const 11)
                                   (i32.const 256) (i32.const 260)))
      (then
        (if (i32.gt_u (i32.load (i32.const 260)) (i32.const 0))
          (then
            (drop (call $send_local_response
              (i32.const 403) (i32.const 0) (i32.const 0)
              (i32.const 112) (i32.const 25)
              (i32.const 0) (i32.const 0) (i32.const -1)))
            ;; 1 = stop iteration: the local response answers the request.
            (return (i32.const 1))))))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    ;; map 2 = response headers.
    (drop (call $add_header (i32.const 2) (i32.const 16) (i32.const 13)
                            (i32.const 48) (i32.const 9)))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
