import SpargeAttn

extension TokenOrder {
    /// The Hilbert order of the grid of a `VideoLikeWorkload` (no prefix). Throws
    /// `SpargeError.invalidTokenOrder` when its tokens do not fill whole frames (a partial last
    /// frame has no rectangular grid).
    public static func hilbert(_ workload: VideoLikeWorkload) throws -> TokenOrder {
        let order = try hilbert(frames: workload.frames, height: workload.height, width: workload.width)
        guard order.count == workload.tokens else {
            throw SpargeError.invalidTokenOrder(
                "the workload has \(workload.tokens) tokens, not whole frames of \(workload.height)x\(workload.width) (\(order.count) for \(workload.frames) frames); give it a multiple of height x width tokens")
        }
        return order
    }
}

@available(*, deprecated, message: "use TokenOrder.hilbert(_:) with the workload")
extension HilbertOrder {
    /// The order of the grid of a `VideoLikeWorkload`. Throws `SpargeError.invalidShape`
    /// when its tokens do not fill whole frames (a partial last frame has no rectangular grid).
    public init(_ workload: VideoLikeWorkload) throws {
        try self.init(frames: workload.frames, height: workload.height, width: workload.width)
        try validate(tokens: workload.tokens)
    }
}
