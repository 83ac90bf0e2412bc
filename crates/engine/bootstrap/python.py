# Stratus built-in Python runtime. Started as `python3 -I -c <this file>` with fds 3 (frames from the engine) and
# 4 (frames to the engine); stdout and stderr are the invocation log. The frame protocol is documented in
# crates/engine/src/protocol.rs. Keep this file small and fast: it runs on every cold start (it avoids `json`,
# whose import pulls `re` and costs more than the rest of the bootstrap, by driving the C accelerator directly).
import os, sys, time


def _json_codec():
    """loads/dumps as `json.loads` and `json.dumps(ensure_ascii=False)`, on the C accelerator when present."""
    try:
        import _json

        class Ctx:
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            memo = {}

            @staticmethod
            def parse_constant(name):
                return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]

        scan = _json.make_scanner(Ctx())
        space = " \t\n\r"

        def loads(text):
            start = len(text) - len(text.lstrip(space))
            try:
                obj, end = scan(text, start)
            except StopIteration:
                raise ValueError("the event is not valid JSON") from None
            finally:
                Ctx.memo.clear()
            if text[end:].strip(space):
                raise ValueError("the event is not valid JSON: extra data at %d" % end)
            return obj

        def default(o):
            raise TypeError("Object of type %s is not JSON serializable" % o.__class__.__name__)

        def dumps(obj):
            enc = _json.make_encoder({}, default, _json.encode_basestring, None, ": ", ", ", False, False, True)
            return "".join(enc(obj, 0))

        dumps({"probe": [1, 2.5, None, True, "x"]})
        return loads, dumps
    except Exception:
        import json

        return json.loads, lambda o: json.dumps(o, ensure_ascii=False)


def _stratus_main():
    rfd, wfd = 3, 4
    os.set_inheritable(rfd, False)
    os.set_inheritable(wfd, False)
    for s in (sys.stdout, sys.stderr):
        try:
            s.reconfigure(line_buffering=True)
        except Exception:
            pass
    env = os.environ
    paths = [p for p in env.get("PYTHONPATH", "").split(":") if p]
    sys.path[0:0] = [p for p in paths if p not in sys.path]
    if "site" not in sys.modules:
        # Started with -S (the host's .pth hooks can cost tens of ms): keep the interpreter's own site-packages.
        ver = "python%d.%d" % sys.version_info[:2]
        for d in (
            os.path.join(sys.prefix, "lib", ver, "site-packages"),
            os.path.join(sys.prefix, "local", "lib", ver, "dist-packages"),
            os.path.join(sys.prefix, "lib", "python3", "dist-packages"),
        ):
            if d not in sys.path and os.path.isdir(d):
                sys.path.append(d)
        import builtins

        # `site` also provides exit() and quit(): handlers that call them end the process, as on SCF.
        builtins.exit = builtins.quit = sys.exit
    loads, dumps = _json_codec()
    buf = bytearray()
    read = os.read
    write = os.write

    def read_frame():
        while len(buf) < 5:
            chunk = read(rfd, 65536)
            if not chunk:
                return None, None
            buf.extend(chunk)
        n = int.from_bytes(buf[:4], "big")
        kind = buf[4]
        while len(buf) < 5 + n:
            chunk = read(rfd, max(65536, 5 + n - len(buf)))
            if not chunk:
                return None, None
            buf.extend(chunk)
        payload = bytes(buf[5 : 5 + n])
        del buf[: 5 + n]
        return kind, payload

    def send(kind, payload):
        data = memoryview(len(payload).to_bytes(4, "big") + kind + payload)
        while data:
            data = data[write(wfd, data) :]

    def flush():
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except Exception:
                pass

    def trace(e, skip=0):
        import traceback

        tb = e.__traceback__
        for _ in range(skip):
            if tb is not None:
                tb = tb.tb_next
        frames = [
            f
            for f in traceback.extract_tb(tb)
            if f.filename != "<string>" and not f.filename.startswith("<frozen ")
        ]
        lines = ["Traceback (most recent call last):\n"]
        lines += traceback.format_list(frames)
        lines += traceback.format_exception_only(type(e), e)
        return "".join(lines).rstrip("\n")

    def error(status, etype, message, stack=""):
        return dumps(
            {
                "errorCode": 1 if status == 430 else -1,
                "errorMessage": message,
                "errorType": etype,
                "stackTrace": stack,
                "statusCode": status,
            }
        ).encode()

    def fatal(payload):
        flush()
        send(b"F", payload)
        os._exit(1)

    kind, cfg = read_frame()
    if kind != ord("C"):
        os._exit(2)
    cfg = loads(cfg.decode())

    t0 = time.perf_counter()
    handler = env.get("_HANDLER", "")
    mod_name, _, fn_name = handler.rpartition(".")
    mod_path = mod_name.replace("/", ".").strip(".")
    if not mod_path or not fn_name:
        fatal(error(437, "HandlerNotFound", "Handler `%s` is not of the form file.function" % handler))
    try:
        import importlib

        module = importlib.import_module(mod_path)
    except ModuleNotFoundError as e:
        if e.name and (mod_path == e.name or mod_path.startswith(e.name + ".")):
            fatal(
                error(
                    437,
                    "HandlerNotFound",
                    "Handler `%s` not found: no module `%s` in the code" % (handler, mod_name),
                )
            )
        fatal(error(430, type(e).__name__, str(e), trace(e)))
    except Exception as e:
        fatal(error(430, type(e).__name__, str(e), trace(e)))
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        fatal(
            error(
                437,
                "HandlerNotFound",
                "Handler `%s` not found: module `%s` has no function `%s`" % (handler, mod_name, fn_name),
            )
        )
    init_ms = (time.perf_counter() - t0) * 1000.0
    flush()
    send(b"R", ("%.3f" % init_ms).encode())

    class Context(dict):
        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

    base = {
        "callbackWaitsForEmptyEventLoop": False,
        "memory_limit_in_mb": cfg["memory_limit_in_mb"],
        "time_limit_in_ms": cfg["time_limit_in_ms"],
        "request_id": "",
        "environment": cfg["environment"],
        "environ": cfg["environment"],
        "function_version": cfg["function_version"],
        "function_name": cfg["function_name"],
        "namespace": cfg["namespace"],
        "tencentcloud_region": cfg["tencentcloud_region"],
        "tencentcloud_appid": cfg["tencentcloud_appid"],
        "tencentcloud_uin": cfg["tencentcloud_uin"],
    }
    now = time.time
    while True:
        kind, payload = read_frame()
        if kind is None:
            os._exit(0)
        if kind != 73:  # b"I"
            continue
        rid, deadline, body = payload.split(b"\n", 2)
        ctx = Context(base)
        ctx["request_id"] = rid.decode()
        deadline_ms = int(deadline)
        ctx["getRemainingTimeInMillis"] = lambda d=deadline_ms: max(0, d - int(now() * 1000))
        try:
            body = body.decode()
            event = loads(body) if body.strip() else {}
            out = dumps(fn(event, ctx)).encode()
            kind = b"O"
        except Exception as e:
            out = error(430, type(e).__name__, str(e), trace(e, 1))
            kind = b"E"
        flush()
        send(kind, out)


_stratus_main()
