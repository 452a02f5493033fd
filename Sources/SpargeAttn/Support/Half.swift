/// Rounds an fp32 value to the nearest fp16 value (ties to even), as the GPU code's `.half()`.
@inline(__always)
func roundToHalf(_ x: Float) -> Float {
    Float(Float16(x))
}
