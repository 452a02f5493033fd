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
    /// bytes, `batch` 1 for a shared mask, else the call's `B`); ``fill(batch:threads:)`` computes them.
    init(view: PairMaskView, blockQ: Int, blockK: Int, states: UnsafeMutablePointer<UInt8>) {
        self.view = view
        self.states = states
        self.blockQ = blockQ
        self.blockK = blockK
        queryBlocks = blockCount(view.queryLength, blockQ)
        keyBlocks = blockCount(view.keyLength, blockK)
    }

    /// Computes every state from the mask, one (mask batch entry, query block) per work item.
    /// Row by row through the mask (sequential reads: a block's rows lie `Nk` bytes apart),
    /// each block's byte collecting two bits: 1 when a pair of it attends, 2 when one does not.
    func fill(batch: Int, threads: Int) {
        let (nq, nk, view, blockQ, blockK) = (queryBlocks, keyBlocks, view, blockQ, blockK)
        let out = UnsafeSendable(states)
        parallelFor(items: (view.batchStride == 0 ? 1 : batch) * nq, threads: threads) { _, item in
            let b = item / nq, i = item % nq
            let seen = out.value + item * nk
            seen.update(repeating: 0, count: nk)
            for t in (i * blockQ)..<Swift.min(view.queryLength, (i + 1) * blockQ) {
                let row = view.row(b, t)
                for j in 0..<nk {
                    let kStart = j * blockK
                    seen[j] |= Self.pairBits(row + kStart, count: Swift.min(blockK, view.keyLength - kStart))
                }
            }
            for j in 0..<nk {
                let state: PairBlockState = switch seen[j] { case 1: .allowed; case 2: .forbidden; default: .mixed }
                seen[j] = state.rawValue
            }
        }
    }

    /// Bit 1 when one of `count` mask bytes is 1, bit 2 when one is 0: eight bytes at a time,
    /// OR-ed and AND-ed (each byte is 0 or 1, so the AND of words of ones is 0x0101...01).
    @inline(__always)
    static func pairBits(_ bytes: UnsafePointer<UInt8>, count: Int) -> UInt8 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let raw = UnsafeRawPointer(bytes)
        var some: UInt64 = 0, every = ones
        var c = 0
        while c + 8 <= count {
            let word = raw.loadUnaligned(fromByteOffset: c, as: UInt64.self)
            some |= word
            every &= word
            c += 8
        }
        while c < count {
            let byte = UInt64(bytes[c])
            some |= byte
            every &= byte | ~1   // a zero byte clears bit 0 of `every`
            c += 1
        }
        return (some != 0 ? 1 : 0) | (every != ones ? 2 : 0)
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
