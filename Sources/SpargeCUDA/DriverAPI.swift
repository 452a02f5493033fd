#if CUDA
// The few CUDA driver API entry points SpargeCUDA uses, resolved from libcuda.so.1 at run
// time. Types are the C ABI's: CUresult is int, CUdevice int, handles are pointers,
// CUdeviceptr is a 64-bit integer.

typealias CUresult = Int32
typealias CUdeviceptr = UInt64
typealias CUhandle = OpaquePointer

struct DriverAPI: @unchecked Sendable {
    let library: DynamicLibrary
    let cuInit: @convention(c) (UInt32) -> CUresult
    let cuDriverGetVersion: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGetCount: @convention(c) (UnsafeMutablePointer<Int32>) -> CUresult
    let cuDeviceGet: @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> CUresult
    let cuDeviceGetAttribute: @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> CUresult
    let cuDeviceGetName: @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> CUresult
    let cuDevicePrimaryCtxRetain: @convention(c) (UnsafeMutablePointer<CUhandle?>, Int32) -> CUresult
    let cuCtxSetCurrent: @convention(c) (CUhandle?) -> CUresult
    let cuCtxSynchronize: @convention(c) () -> CUresult
    let cuModuleLoadData: @convention(c) (UnsafeMutablePointer<CUhandle?>, UnsafeRawPointer) -> CUresult
    let cuModuleGetFunction: @convention(c) (UnsafeMutablePointer<CUhandle?>, CUhandle, UnsafePointer<CChar>) -> CUresult
    let cuFuncSetAttribute: @convention(c) (CUhandle, Int32, Int32) -> CUresult
    let cuLaunchKernel: @convention(c) (CUhandle, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUhandle?,
                                        UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> CUresult
    let cuMemAlloc: @convention(c) (UnsafeMutablePointer<CUdeviceptr>, Int) -> CUresult
    let cuMemFree: @convention(c) (CUdeviceptr) -> CUresult
    let cuMemcpyHtoD: @convention(c) (CUdeviceptr, UnsafeRawPointer, Int) -> CUresult
    let cuMemcpyDtoH: @convention(c) (UnsafeMutableRawPointer, CUdeviceptr, Int) -> CUresult
    let cuMemsetD8: @convention(c) (CUdeviceptr, UInt8, Int) -> CUresult
    let cuMemsetD8Async: @convention(c) (CUdeviceptr, UInt8, Int, CUhandle?) -> CUresult
    let cuEventCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>, UInt32) -> CUresult
    let cuEventRecord: @convention(c) (CUhandle, CUhandle?) -> CUresult
    let cuEventSynchronize: @convention(c) (CUhandle) -> CUresult
    let cuEventElapsedTime: @convention(c) (UnsafeMutablePointer<Float>, CUhandle, CUhandle) -> CUresult
    let cuEventDestroy: @convention(c) (CUhandle) -> CUresult
    let cuStreamCreate: @convention(c) (UnsafeMutablePointer<CUhandle?>, UInt32) -> CUresult
    let cuStreamWaitEvent: @convention(c) (CUhandle?, CUhandle, UInt32) -> CUresult
    let cuStreamDestroy: @convention(c) (CUhandle) -> CUresult
    let cuGetErrorName: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult
    let cuGetErrorString: @convention(c) (CUresult, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> CUresult

    /// Where libcuda is looked for: `SPARGE_CUDA_DRIVER`, then the loader's search path.
    static var candidates: [String] {
        environmentPaths("SPARGE_CUDA_DRIVER") + ["libcuda.so.1", "libcuda.so", "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                                                   "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib64/libcuda.so.1"]
    }

    init() throws {
        let l = try DynamicLibrary.open("the CUDA driver (libcuda.so.1)", candidates: Self.candidates,
                                        hint: "install the NVIDIA driver, or set SPARGE_CUDA_DRIVER to the path of libcuda.so.1")
        library = l
        cuInit = try l.function("cuInit")
        cuDriverGetVersion = try l.function("cuDriverGetVersion")
        cuDeviceGetCount = try l.function("cuDeviceGetCount")
        cuDeviceGet = try l.function("cuDeviceGet")
        cuDeviceGetAttribute = try l.function("cuDeviceGetAttribute")
        cuDeviceGetName = try l.function("cuDeviceGetName")
        cuDevicePrimaryCtxRetain = try l.function("cuDevicePrimaryCtxRetain")
        cuCtxSetCurrent = try l.function("cuCtxSetCurrent")
        cuCtxSynchronize = try l.function("cuCtxSynchronize")
        cuModuleLoadData = try l.function("cuModuleLoadData")
        cuModuleGetFunction = try l.function("cuModuleGetFunction")
        cuFuncSetAttribute = try l.function("cuFuncSetAttribute")
        cuLaunchKernel = try l.function("cuLaunchKernel")
        cuMemAlloc = try l.function("cuMemAlloc_v2")
        cuMemFree = try l.function("cuMemFree_v2")
        cuMemcpyHtoD = try l.function("cuMemcpyHtoD_v2")
        cuMemcpyDtoH = try l.function("cuMemcpyDtoH_v2")
        cuMemsetD8 = try l.function("cuMemsetD8_v2")
        cuMemsetD8Async = try l.function("cuMemsetD8Async")
        cuEventCreate = try l.function("cuEventCreate")
        cuEventRecord = try l.function("cuEventRecord")
        cuEventSynchronize = try l.function("cuEventSynchronize")
        cuEventElapsedTime = try l.function("cuEventElapsedTime")
        cuEventDestroy = try l.function("cuEventDestroy_v2")
        cuStreamCreate = try l.function("cuStreamCreate")
        cuStreamWaitEvent = try l.function("cuStreamWaitEvent")
        cuStreamDestroy = try l.function("cuStreamDestroy_v2")
        cuGetErrorName = try l.function("cuGetErrorName")
        cuGetErrorString = try l.function("cuGetErrorString")
    }

    /// Throws ``CUDAError/driver(call:code:name:message:)`` unless `status` is CUDA_SUCCESS.
    func check(_ status: CUresult, _ call: @autoclosure () -> String) throws {
        guard status != 0 else { return }
        var name: UnsafePointer<CChar>? = nil, message: UnsafePointer<CChar>? = nil
        _ = cuGetErrorName(status, &name)
        _ = cuGetErrorString(status, &message)
        throw CUDAError.driver(call: call(), code: status, name: name.map { String(cString: $0) } ?? "CUDA_ERROR_\(status)",
                               message: message.map { String(cString: $0) } ?? "unknown error")
    }
}
#endif
