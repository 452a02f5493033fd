#if CUDA
/// A second stream for preparation work independent of the main stream's (Q blocks and V^T
/// beside K mean and K blocks: each kernel alone leaves most of the GPU waiting on memory
/// latency), and the events that order the two. The main stream is the legacy default
/// stream; the side stream is non-blocking, so only these events order it: `fork()` makes it
/// wait for everything launched on the main stream so far, `mark(n)` records point `n` on it,
/// `join(n)` makes the main stream wait for that point.
final class StreamFork {
    let device: CUDADevice
    let stream: CUhandle
    private let forkEvent: CUhandle
    private let points: [CUhandle]

    init(device: CUDADevice, points count: Int) throws {
        self.device = device
        let api = device.api
        try device.makeCurrent()
        var s: CUhandle? = nil
        try api.check(api.cuStreamCreate(&s, 1), "cuStreamCreate")   // CU_STREAM_NON_BLOCKING
        guard let s else { throw CUDAError.noDevice("cuStreamCreate returned no stream") }
        let e: [CUhandle]
        do {
            e = try device.events(count + 1, flags: 2)   // CU_EVENT_DISABLE_TIMING
        } catch {
            _ = api.cuStreamDestroy(s)
            throw error
        }
        stream = s
        forkEvent = e[0]
        points = Array(e.dropFirst())
    }

    func fork() throws {
        try device.api.check(device.api.cuEventRecord(forkEvent, nil), "cuEventRecord")
        try device.api.check(device.api.cuStreamWaitEvent(stream, forkEvent, 0), "cuStreamWaitEvent")
    }

    func mark(_ n: Int) throws { try device.api.check(device.api.cuEventRecord(points[n], stream), "cuEventRecord") }

    func join(_ n: Int) throws { try device.api.check(device.api.cuStreamWaitEvent(nil, points[n], 0), "cuStreamWaitEvent") }

    deinit {
        let api = device.api
        _ = api.cuEventDestroy(forkEvent)
        for e in points { _ = api.cuEventDestroy(e) }
        _ = api.cuStreamDestroy(stream)
    }
}
#endif
