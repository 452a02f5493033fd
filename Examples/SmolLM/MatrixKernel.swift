import SpargeAttn
import SpargeSIMD
#if arch(x86_64)
import SpargeSIMDAVX2
import SpargeSIMDAVX512
#endif

/// A weight matrix `W` (`rows` outputs x `columns` inputs) packed for ``MatrixKernel``: panels of
/// 16 output rows, each stored input by input (`panel[k * 16 + j] = W[16 p + j][k]`), so that the
/// kernel streams one panel with two 8-wide loads per input.
struct PackedMatrix: Sendable {
    static let panelWidth = SpargeSIMD.KernelSet.panelColumns
    let rows: Int
    let columns: Int
    let data: [Float]

    init(rows: Int, columns: Int, rowMajor w: [Float]) throws {
        guard rows % Self.panelWidth == 0, w.count == rows * columns else {
            throw ModelError.shape("a \(rows) x \(columns) matrix needs a multiple of 16 rows and \(rows * columns) values (has \(w.count))")
        }
        self.rows = rows
        self.columns = columns
        var packed = [Float](repeating: 0, count: rows * columns)
        for p in 0..<(rows / Self.panelWidth) {
            for j in 0..<Self.panelWidth {
                let src = (p * Self.panelWidth + j) * columns, dst = p * columns * Self.panelWidth + j
                for k in 0..<columns { packed[dst + k * Self.panelWidth] = w[src + k] }
            }
        }
        data = packed
    }
}

/// `Y = X W^T` (or `Y += X W^T`) for row-major `X` (`n x columns`, leading dimension `ldx`) and
/// `Y` (`n x rows`, leading dimension `ldy`): SpargeSIMD's panel kernel (a 6 x 16 register
/// tile) of the instruction set the library chose at run time (`SpargeCPU.currentLevel()`, so
/// `SPARGE_ISA` and `SpargeCPU.withLevel` apply to the projections too), work split over
/// threads in coarse (row chunk, panel chunk) items.
enum MatrixKernel {
    static let rowChunk = 48
    static let panelChunk = 8

    static func multiply(_ x: UnsafePointer<Float>, ldx: Int, n: Int, _ w: PackedMatrix,
                         into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool, threads: Int) {
        let kernel = modelKernels()
        let panels = w.rows / PackedMatrix.panelWidth
        let rowChunks = (n + rowChunk - 1) / rowChunk
        let panelChunks = (panels + panelChunk - 1) / panelChunk
        let items = rowChunks * panelChunks
        // Addresses cross the closure as integers: the buffers outlive the call, and each item
        // writes a disjoint block of Y.
        let xa = UInt(bitPattern: x), ya = UInt(bitPattern: y)
        w.data.withUnsafeBufferPointer { wp in
            let wa = UInt(bitPattern: wp.baseAddress!)
            let work = { (item: Int) in
                let x = UnsafePointer<Float>(bitPattern: xa)!, y = UnsafeMutablePointer<Float>(bitPattern: ya)!
                let wBase = UnsafePointer<Float>(bitPattern: wa)!
                let rc = item / panelChunks, pc = item % panelChunks
                let r0 = rc * rowChunk, r1 = min(n, r0 + rowChunk)
                let p0 = pc * panelChunk, p1 = min(panels, p0 + panelChunk)
                for p in p0..<p1 {
                    kernel.multiplyPanel(x: x + r0 * ldx, ldx: ldx, rows: r1 - r0,
                                         panel: wBase + p * w.columns * PackedMatrix.panelWidth, depth: w.columns,
                                         y: y + r0 * ldy + p * PackedMatrix.panelWidth, ldy: ldy, accumulate: accumulate)
                }
            }
            parallelFor(items: items, threads: threads, work)
        }
    }

    /// The panel kernel of the level the library runs now (its best, `SPARGE_ISA`'s, or
    /// `SpargeCPU.withLevel`'s); the baseline set if the level cannot be read (an invalid
    /// `SPARGE_ISA` is reported by the attention calls themselves).
    static func modelKernels() -> any ModelKernels.Type {
        switch (try? SpargeCPU.currentLevel()) ?? .baseline {
        case .baseline: return SpargeSIMD.KernelSet.self
        #if arch(x86_64)
        case .avx2: return SpargeSIMDAVX2.KernelSet.self
        case .avx512: return SpargeSIMDAVX512.KernelSet.self
        #else
        default: return SpargeSIMD.KernelSet.self
        #endif
        }
    }
}

/// The kernels of the model's steps besides attention (the projections' panel product and the
/// MLP's SiLU gate) that each of SpargeSIMD's compiled kernel sets provides.
protocol ModelKernels {
    static func multiplyPanel(x: UnsafePointer<Float>, ldx: Int, rows: Int, panel: UnsafePointer<Float>, depth: Int,
                              y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool)
    static func siluGate(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>)
}
extension SpargeSIMD.KernelSet: ModelKernels {}
#if arch(x86_64)
extension SpargeSIMDAVX2.KernelSet: ModelKernels {}
extension SpargeSIMDAVX512.KernelSet: ModelKernels {}
#endif
