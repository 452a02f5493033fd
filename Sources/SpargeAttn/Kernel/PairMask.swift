// A per-pair attention mask (``AttentionMask``) as the kernels read it, and its block summary:
// which blocks it forbids entirely (masked: stage 1 never picks them, stage 2 never visits
// them), allows entirely (no pair is tested) or splits (each pair tested in the tile).

/// The caller's mask bytes, `batch,Nq,Nk` (1 = attend), alive during a call.
struct PairMaskView {
    let allowed: UnsafePointer<UInt8>
    /// `Nq * Nk`, or 0 when one mask serves every batch entry.
    let batchStride: Int
    let queryLength: Int
    let keyLength: Int

    /// The bytes of query `query` of batch entry `b`, from key `firstKey` on.
    @inline(__always)
    func row(_ b: Int, _ query: Int, from firstKey: Int = 0) -> UnsafePointer<UInt8> {
        allowed + b * batchStride + query * keyLength + firstKey
    }

    /// What the mask says of the pairs `rows x columns` from (`firstQuery`, `firstKey`).
    func state(_ b: Int, firstQuery: Int, rows: Int, firstKey: Int, columns: Int) -> PairBlockState {
        var any = false, all = true
        for r in 0..<rows {
            let row = self.row(b, firstQuery + r, from: firstKey)
            for c in 0..<columns {
                if row[c] != 0 { any = true } else { all = false }
            }
            if any && !all { return .mixed }
        }
        return any ? .allowed : .forbidden
    }
}

/// One block of pairs under the mask.
enum PairBlockState: UInt8 {
    /// No pair attends: the block is masked.
    case forbidden = 0
    /// Some pairs attend, some do not: the kernel tests each.
    case mixed = 1
    /// Every pair attends: nothing to test.
    case allowed = 2
}

/// The block states of a call's mask for blocks `blockQ x blockK`, computed once per call.
struct PairBlockStates {
    let view: PairMaskView
    let states: UnsafeMutablePointer<UInt8>
    let queryBlocks: Int
    let keyBlocks: Int
    let blockQ: Int
    let blockK: Int

    /// The states of `view` for blocks `blockQ x blockK`, kept in `states` (`batch x nq x nk`
    /// bytes, `batch` 1 for a shared mask, else the call's `B`); ``fill(threads:)`` computes them.
    init(view: PairMaskView, blockQ: Int, blockK: Int, states: UnsafeMutablePointer<UInt8>) {
        self.view = view
        self.states = states
        self.blockQ = blockQ
        self.blockK = blockK
        queryBlocks = blockCount(view.queryLength, blockQ)
        keyBlocks = blockCount(view.keyLength, blockK)
    }

    /// Computes every state from the mask, one (mask batch entry, query block) per work item.
    func fill(batch: Int, threads: Int) {
        let (nq, nk, view, blockQ, blockK) = (queryBlocks, keyBlocks, view, blockQ, blockK)
        let out = UnsafeSendable(states)
        parallelFor(items: (view.batchStride == 0 ? 1 : batch) * nq, threads: threads) { _, item in
            let b = item / nq, i = item % nq
            let qStart = i * blockQ, rows = Swift.min(blockQ, view.queryLength - qStart)
            for j in 0..<nk {
                let kStart = j * blockK
                out.value[item * nk + j] = view.state(b, firstQuery: qStart, rows: rows, firstKey: kStart,
                                                      columns: Swift.min(blockK, view.keyLength - kStart)).rawValue
            }
        }
    }

    /// The state of block (`i`, `j`) of batch entry `b`.
    @inline(__always)
    func state(_ b: Int, _ i: Int, _ j: Int) -> PairBlockState {
        PairBlockState(rawValue: states[((view.batchStride == 0 ? 0 : b) * queryBlocks + i) * keyBlocks + j])!
    }

    /// The `nq x nk` states of batch entry `b` (raw bytes, for stage 1's selection).
    func rows(_ b: Int) -> UnsafePointer<UInt8> {
        UnsafePointer(states + (view.batchStride == 0 ? 0 : b) * queryBlocks * keyBlocks)
    }
}
