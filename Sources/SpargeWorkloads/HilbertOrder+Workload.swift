import SpargeAttn

extension HilbertOrder {
    /// The order of the grid of a `VideoLikeWorkload`. Throws `SpargeError.invalidShape`
    /// when its tokens do not fill whole frames (a partial last frame has no rectangular grid).
    public init(_ workload: VideoLikeWorkload) throws {
        try self.init(frames: workload.frames, height: workload.height, width: workload.width)
        try validate(tokens: workload.tokens)
    }
}
