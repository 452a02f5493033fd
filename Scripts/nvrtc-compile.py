#!/usr/bin/env python3
"""Compiles one kernel source dumped by SPARGE_NVRTC_DUMP (DIR/<program>.cu with its
<program>.cu.options) through NVRTC, without the Swift package: for reading the SASS of a
variant quickly. Extra arguments replace or add -D options, e.g.

    python3 Scripts/nvrtc-compile.py /tmp/dump/sparge_attention_wg_....cu out.cubin -DI2F=0

ptxas' report (registers, spills) goes to stderr; read the SASS with
`nvdisasm -c out.cubin` (nvdisasm ships in Triton's wheel). NVRTC: $SPARGE_NVRTC, else
libnvrtc.so from the nvidia-cuda-nvrtc wheel."""
import ctypes, glob, os, sys, sysconfig

def library():
    path = os.environ.get("SPARGE_NVRTC")
    if not path:
        found = sorted(glob.glob(os.path.join(sysconfig.get_paths()["purelib"], "nvidia", "cu*", "lib", "libnvrtc.so.*")))
        if not found:
            sys.exit("no NVRTC: set SPARGE_NVRTC or `pip install nvidia-cuda-nvrtc`")
        path = found[-1]
    return ctypes.CDLL(path)

def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    source, output, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    options = [o for o in open(source + ".options").read().split("\n") if o]
    for e in extra:
        name = e.split("=")[0]
        options = [o for o in options if o.split("=")[0] != name] + [e]
    options.append("--ptxas-options=-v")
    nvrtc = library()
    prog = ctypes.c_void_p()
    text = open(source, "rb").read()
    assert nvrtc.nvrtcCreateProgram(ctypes.byref(prog), text, os.path.basename(source).encode(), 0, None, None) == 0
    args = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    status = nvrtc.nvrtcCompileProgram(prog, len(options), args)
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(prog, log)
    sys.stderr.write(log.value.decode(errors="replace"))
    if status != 0:
        sys.exit(f"nvrtcCompileProgram failed ({status})")
    nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetCUBIN(prog, cubin)
    open(output, "wb").write(cubin.raw)

main()
