import Foundation
import SpargeAttn

/// A deterministic generator of attention inputs that look like those of a video diffusion
/// transformer: tokens on a `frames x height x width` grid in raster order (`t`, then `y`, then
/// `x`), with queries and keys that are smooth functions of the token's position, so that each
/// token attends mostly to its spatial and temporal neighbours and the attention is genuinely
/// block-sparse. Also the worst case, ``gaussian``: independent N(0, 1) entries.
///
/// The model, per head (`s = 1/sqrt(D)`, `c` = ``sharpness`` times a per-head factor):
/// - the exact logits are `s * q(p).k(p') ~ c * [(1 - w) k_local(p - p') + w k_broad(p - p')]`
///   plus a constant and small noise, where `k_local` and `k_broad` are Gaussian kernels over
///   `(t, y, x)` with length scales ``localScale`` and ``broadScale`` (both jittered per head)
///   and `w` = ``broadWeight``. The kernels are built from random Fourier features (cos/sin of
///   random frequencies, `O(D)` of them) mixed into the `D` channels by a random orthonormal
///   basis, so the logit matrix has rank at most `D`, like a real head's;
/// - K also carries a large component along the broad features that Q mostly ignores, and Q a
///   large constant offset (real Q and K have both): blocks of Q and of the smoothed K are
///   therefore self-similar, which stage 1 relies on;
/// - V is another smooth random field plus noise.
///
/// A larger ``sharpness`` concentrates the attention on fewer neighbours, hence sparser maps:
/// the presets ``mild``, ``medium`` and ``sharp`` give several sparsity levels. Generation costs
/// `O(B * H * N * D * D)` and is parallel over heads. The same parameters give the same bits
/// for any thread count, and the same random draws everywhere (own SplitMix64 generator, no
/// system randomness); values can differ in the last bit between platforms' `sin`/`cos`.
///
/// ```swift
/// var workload = VideoLikeWorkload.medium
/// workload.heads = 8
/// let inputs = try workload.generate()
/// let (out, result) = try SpargeAttention.sparse(q: inputs.q, k: inputs.k, v: inputs.v, shape: inputs.shape)
/// ```
public struct VideoLikeWorkload: Sendable, Hashable, CustomStringConvertible {
    /// What the tokens look like.
    public enum Pattern: String, Sendable, Hashable, CaseIterable {
        /// Smooth fields over the video grid: local, block-sparse attention.
        case videoLike
        /// Independent N(0, 1) entries: nearly uniform attention, the worst case for sparsity.
        case gaussian
    }

    /// The inputs of one attention call, `B,H,N,D` fp32.
    public struct Tensors: Sendable {
        /// The queries, `B,H,N,D`.
        public var q: [Float]
        /// The keys, `B,H,N,D`.
        public var k: [Float]
        /// The values, `B,H,N,D`.
        public var v: [Float]
        /// The sizes of the call.
        public var shape: AttentionShape
    }

    /// Video-like fields or Gaussian noise.
    public var pattern: Pattern = .videoLike
    /// Batch size `B`; each batch entry is a different random "video".
    public var batch: Int = 1
    /// Heads `H` (K/V have as many heads as Q).
    public var heads: Int = 4
    /// Head dimension `D`.
    public var headDim: Int = 64
    /// Rows `y` of one frame.
    public var height: Int = 16
    /// Columns `x` of one frame.
    public var width: Int = 32
    /// Tokens `N`: the first `N` positions of the raster order (`ceil(N / (height * width))`
    /// frames; a partial last frame is allowed).
    public var tokens: Int = 8 * 16 * 32
    /// Logit contrast `c`: how much larger (in natural-log units, after the softmax scale) the
    /// score of a token with itself is than that of a far token. Larger is sharper and sparser.
    public var sharpness: Float = 8
    /// Per-head spread of the sharpness: head factors run geometrically from
    /// `exp(-spread/2)` to `exp(+spread/2)`, so heads differ as in real models.
    public var headSpread: Float = 0.6
    /// Length scales `(t, y, x)` of the local kernel, in grid cells.
    public var localScale: [Float] = [1.0, 1.5, 3.0]
    /// Length scales `(t, y, x)` of the broad kernel: long along `x`, so that a block (a few
    /// whole rows of a frame) has one dominant key direction, as real key blocks do.
    public var broadScale: [Float] = [1.5, 4, 48]
    /// Share `w` of the contrast carried by the broad kernel.
    public var broadWeight: Float = 0.3
    /// Noise of Q and K, per channel, relative to a typical row's norm.
    public var noise: Float = 0.2
    /// Noise of V relative to its smooth field.
    public var valueNoise: Float = 0.3
    /// Seed of every random draw.
    public var seed: UInt64 = 0x5EED

    /// A video-like workload of `frames x height x width` tokens.
    public init(pattern: Pattern = .videoLike, sharpness: Float = 8, batch: Int = 1, heads: Int = 4,
                frames: Int = 8, height: Int = 16, width: Int = 32, headDim: Int = 64, seed: UInt64 = 0x5EED) {
        self.pattern = pattern
        self.sharpness = sharpness
        self.batch = batch
        self.heads = heads
        self.height = height
        self.width = width
        self.tokens = frames * height * width
        self.headDim = headDim
        self.seed = seed
    }

    /// Broad attention (contrast 3): dense-ish maps; top-k 0.5 loses accuracy (cosine ~0.94).
    public static var mild: VideoLikeWorkload { VideoLikeWorkload(sharpness: 3) }
    /// Moderately local attention (contrast 8): the recommended parameters (top-k 0.5) keep
    /// cosine ~0.997 against dense; CDF 0.9 (theta 0.3) keeps ~60% of the blocks.
    public static var medium: VideoLikeWorkload { VideoLikeWorkload(sharpness: 8) }
    /// Very local attention (contrast 16): CDF 0.9 (theta 0.3) keeps ~25% of the blocks at
    /// cosine ~0.9998.
    public static var sharp: VideoLikeWorkload { VideoLikeWorkload(sharpness: 16) }
    /// Independent N(0, 1) Q, K, V: the worst case.
    public static var gaussian: VideoLikeWorkload { VideoLikeWorkload(pattern: .gaussian) }

    /// Frames spanned by ``tokens``.
    public var frames: Int { (tokens + height * width - 1) / Swift.max(1, height * width) }

    /// The shape of the generated tensors.
    public var shape: AttentionShape {
        AttentionShape(batch: batch, heads: heads, queryLength: tokens, headDim: headDim)
    }

    public var description: String {
        let grid = "\(frames)x\(height)x\(width)\(tokens == frames * height * width ? "" : " (first \(tokens) tokens)")"
        switch pattern {
        case .gaussian: return "gaussian N(0,1), \(shape)"
        case .videoLike: return "video-like grid \(grid), sharpness \(sharpness), \(shape)"
        }
    }

    /// The sharpness `c` of head `h`.
    public func sharpness(head h: Int) -> Float {
        guard heads > 1 else { return sharpness }
        let u = Float(h) / Float(heads - 1) - 0.5
        return sharpness * Foundation.exp(headSpread * u)
    }

    /// Throws `SpargeError.invalidShape(_:)` or `SpargeError.invalidParameter(_:)` for
    /// unusable settings.
    public func validate() throws {
        try shape.validate()
        if height < 1 || width < 1 { throw SpargeError.invalidShape("frame is \(height)x\(width); both sizes must be at least 1") }
        guard sharpness.isFinite, sharpness >= 0 else { throw SpargeError.invalidParameter("sharpness is \(sharpness); it must be a finite number >= 0") }
        guard localScale.count == 3, localScale.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw SpargeError.invalidParameter("localScale is \(localScale); give three positive length scales (t, y, x)")
        }
        guard broadScale.count == 3, broadScale.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw SpargeError.invalidParameter("broadScale is \(broadScale); give three positive length scales (t, y, x)")
        }
        for (name, x) in [("headSpread", headSpread), ("noise", noise), ("valueNoise", valueNoise)]
        where !(x.isFinite && x >= 0) {
            throw SpargeError.invalidParameter("\(name) is \(x); it must be a finite number >= 0")
        }
        guard broadWeight >= 0, broadWeight <= 1 else { throw SpargeError.invalidParameter("broadWeight is \(broadWeight); it must be in [0, 1]") }
    }

    /// Generates Q, K and V (`B,H,N,D` fp32). Deterministic: the same settings give the same
    /// bits whatever `threads` (default: every CPU).
    public func generate(threads: Int? = nil) throws -> Tensors {
        try validate()
        let s = shape, n = tokens, d = headDim
        let count = s.queryElements
        var q = [Float](repeating: 0, count: count)
        var k = [Float](repeating: 0, count: count)
        var v = [Float](repeating: 0, count: count)
        q.withUnsafeMutableBufferPointer { qb in
            k.withUnsafeMutableBufferPointer { kb in
                v.withUnsafeMutableBufferPointer { vb in
                    let out = (qb.baseAddress!, kb.baseAddress!, vb.baseAddress!)
                    fillInParallel(items: batch * heads, threads: threads) { item in
                        let offset = item * n * d
                        let (qp, kp, vp) = out
                        var rng = SplitMix64(seed: seed, stream: UInt64(item))
                        switch pattern {
                        case .gaussian:
                            for i in 0..<(n * d) { qp[offset + i] = rng.gaussian() }
                            for i in 0..<(n * d) { kp[offset + i] = rng.gaussian() }
                            for i in 0..<(n * d) { vp[offset + i] = rng.gaussian() }
                        case .videoLike:
                            fillHead(head: item % heads, rng: &rng, q: qp + offset, k: kp + offset, v: vp + offset)
                        }
                    }
                }
            }
        }
        return Tensors(q: q, k: k, v: v, shape: s)
    }

    // MARK: - Video-like head

    /// Random Fourier features of a Gaussian kernel: `M` frequencies `w ~ N(0, diag(1/l^2))`;
    /// the features `[cos(w.p), sin(w.p)] / sqrt(M)` have dot product `mean cos(w.(p - p'))`,
    /// an unbiased, exactly stationary estimate of the kernel that equals 1 at `p = p'`.
    private struct FourierFeatures {
        var frequencies: [(Float, Float, Float)]
        init(count: Int, scales: [Float], rng: inout SplitMix64) {
            frequencies = (0..<count).map { _ in
                (rng.gaussian() / scales[0], rng.gaussian() / scales[1], rng.gaussian() / scales[2])
            }
        }
        var dimensions: Int { 2 * frequencies.count }
        /// Writes `amplitude * features(p)` into `out[0..<dimensions]`.
        func evaluate(t: Float, y: Float, x: Float, amplitude: Float, into out: UnsafeMutablePointer<Float>) {
            let a = amplitude / Float(frequencies.count).squareRoot()
            for (m, w) in frequencies.enumerated() {
                let phase = w.0 * t + w.1 * y + w.2 * x
                out[2 * m] = a * Foundation.cos(phase)
                out[2 * m + 1] = a * Foundation.sin(phase)
            }
        }
    }

    private func fillHead(head h: Int, rng: inout SplitMix64,
                          q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) {
        let d = headDim, n = tokens
        let scale = 1 / Float(d).squareRoot()
        let c = sharpness(head: h)
        // Per-head length scales: heads look at neighbourhoods of somewhat different sizes.
        let jitter = (0..<3).map { _ in Foundation.exp(0.25 * (2 * Float(rng.uniform()) - 1)) }
        let local = (0..<3).map { localScale[$0] * jitter[$0] }
        let broad = (0..<3).map { broadScale[$0] * jitter[$0] }
        // Channel budget: slow (broad) features, fast (local) features and one offset direction
        // share an orthonormal basis, so their dot products are exactly the kernels above.
        let slowCount = Swift.max(1, d / 16)
        let fastCount = Swift.max(1, (d - 2 * slowCount - 1) / 2)
        let fast = FourierFeatures(count: fastCount, scales: local, rng: &rng)
        let slow = FourierFeatures(count: slowCount, scales: broad, rng: &rng)
        let rank = fast.dimensions + slow.dimensions + 1
        let basis = Self.orthonormalColumns(rows: d, columns: rank, rng: &rng)

        // Amplitudes: s * a^2 = c (1 - w) (local), s * gamma * beta = c w (broad), where K's
        // broad part beta is large (self-similar K blocks) and Q's gamma correspondingly small.
        let a = (c * (1 - broadWeight) / scale).squareRoot()
        let base = (Swift.max(c, 1) / scale).squareRoot()   // the typical magnitude of a row
        let beta = 2 * base
        let gamma = c * broadWeight / scale / beta
        let qOffset = 1.5 * base, kOffset = 1.0 * base
        let sigma = noise * base / Float(d).squareRoot()

        // V: its own smooth field (twice the local length scales) and basis.
        let valueFeatures = FourierFeatures(count: Swift.max(1, d / 2), scales: local.map { $0 * 2 }, rng: &rng)
        let valueBasis = Self.orthonormalColumns(rows: d, columns: valueFeatures.dimensions, rng: &rng)
        let valueAmplitude = Float(d).squareRoot()   // channel RMS about 1
        let valueSigma = valueNoise

        var qf = [Float](repeating: 0, count: rank), kf = [Float](repeating: 0, count: rank)
        var vf = [Float](repeating: 0, count: valueFeatures.dimensions)
        let plane = height * width
        qf.withUnsafeMutableBufferPointer { qf in
            kf.withUnsafeMutableBufferPointer { kf in
                vf.withUnsafeMutableBufferPointer { vf in
                    let qfp = qf.baseAddress!, kfp = kf.baseAddress!, vfp = vf.baseAddress!
                    for token in 0..<n {
                        let t = Float(token / plane), y = Float(token % plane / width), x = Float(token % width)
                        fast.evaluate(t: t, y: y, x: x, amplitude: a, into: qfp)
                        for i in 0..<fast.dimensions { kfp[i] = qfp[i] }
                        slow.evaluate(t: t, y: y, x: x, amplitude: gamma, into: qfp + fast.dimensions)
                        slow.evaluate(t: t, y: y, x: x, amplitude: beta, into: kfp + fast.dimensions)
                        qfp[rank - 1] = qOffset
                        kfp[rank - 1] = kOffset
                        valueFeatures.evaluate(t: t, y: y, x: x, amplitude: valueAmplitude, into: vfp)
                        Self.project(basis, rows: d, columns: rank, qfp, into: q + token * d)
                        Self.project(basis, rows: d, columns: rank, kfp, into: k + token * d)
                        Self.project(valueBasis, rows: d, columns: valueFeatures.dimensions, vfp, into: v + token * d)
                        for i in 0..<d {
                            q[token * d + i] += sigma * rng.gaussian()
                            k[token * d + i] += sigma * rng.gaussian()
                            v[token * d + i] += valueSigma * rng.gaussian()
                        }
                    }
                }
            }
        }
    }

    /// `out = basis * features` for a row-major `rows x columns` basis.
    private static func project(_ basis: [Float], rows: Int, columns: Int, _ features: UnsafePointer<Float>,
                                into out: UnsafeMutablePointer<Float>) {
        basis.withUnsafeBufferPointer { b in
            for r in 0..<rows {
                var acc: Float = 0
                let row = b.baseAddress! + r * columns
                for c in 0..<columns { acc += row[c] * features[c] }
                out[r] = acc
            }
        }
    }

    /// A random `rows x columns` matrix (row-major) whose columns are orthonormal (Gram-Schmidt
    /// on Gaussian columns); columns beyond `rows` are random unit vectors (no room left).
    private static func orthonormalColumns(rows: Int, columns: Int, rng: inout SplitMix64) -> [Float] {
        var cols = [[Double]]()
        for c in 0..<columns {
            var x = (0..<rows).map { _ in Double(rng.gaussian()) }
            if c < rows {
                for _ in 0..<2 {   // twice: re-orthogonalisation keeps it accurate
                    for u in cols.prefix(rows) {
                        var dot = 0.0
                        for i in 0..<rows { dot += u[i] * x[i] }
                        for i in 0..<rows { x[i] -= dot * u[i] }
                    }
                }
            }
            let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
            cols.append(x.map { $0 / Swift.max(norm, 1e-30) })
        }
        var out = [Float](repeating: 0, count: rows * columns)
        for c in 0..<columns { for r in 0..<rows { out[r * columns + c] = Float(cols[c][r]) } }
        return out
    }

    // MARK: - Random numbers

    /// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, statistically good, and the same on
    /// every platform, unlike the system generator. Gaussians by Box-Muller.
    public struct SplitMix64: RandomNumberGenerator, Sendable {
        private var state: UInt64

        /// A generator for `seed`; distinct `stream`s give independent-looking sequences.
        public init(seed: UInt64, stream: UInt64 = 0) {
            state = seed
            state = next() ^ (stream &* 0xD1B5_4A32_D192_ED03)
        }

        public mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        /// Uniform in [0, 1) with 53 random bits.
        public mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }

        /// Standard normal (Box-Muller, one value per call).
        public mutating func gaussian() -> Float {
            let u = Swift.max(uniform(), 0x1p-60), w = uniform()
            return Float((-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * w))
        }
    }
}
