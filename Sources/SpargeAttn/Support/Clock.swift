import Dispatch

/// Monotonic nanoseconds, for the phase timings of a call.
@inline(__always)
func monotonicNanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
