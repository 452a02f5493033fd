import SpargeSIMD

// Block geometry: how a shape divides into stage-1 blocks and kernel tiles. The one place
// block counts are computed (the API's `AttentionShape.blockCounts`, the pipeline, the
// kernels and `BlockMap.validate` all read it).

extension AttentionShape {
    /// The number of query blocks (`ceil(queryLength / blockQ)`) and key blocks
    /// (`ceil(keyLength / blockK)`): the `nq x nk` of this shape's block maps.
    public func blockCounts(blockQ: Int, blockK: Int) -> (queryBlocks: Int, keyBlocks: Int) {
        (blockCount(queryLength, blockQ), blockCount(keyLength, blockK))
    }
}

/// Geometry shared by the preparation and the kernel.
struct SparseGeometry: Sendable {
    let shape: AttentionShape
    let blockQ: Int, blockK: Int
    let queryBlocks: Int, keyBlocks: Int
    let pairs: Int              // int16 pairs per row
    let rowsPad: Int            // blockQ rounded up to 4 (kernel row tile)
    let columnsPad: Int         // blockK rounded up to 16 (kernel column tile)
    let width: Int              // head dim rounded up to 8
    /// Key blocks between consecutive kv heads in the key-side buffers: `keyBlocks`, or a KV
    /// cache's capacity (its buffers keep their layout while it grows).
    let keyBlockStride: Int

    init(shape: AttentionShape, blockQ: Int, blockK: Int, keyBlockStride: Int? = nil) {
        self.shape = shape
        self.blockQ = blockQ
        self.blockK = blockK
        (queryBlocks, keyBlocks) = shape.blockCounts(blockQ: blockQ, blockK: blockK)
        pairs = pairCount(shape.headDim)
        rowsPad = roundUp(blockQ, 4)
        columnsPad = roundUp(blockK, 16)
        width = roundUp(shape.headDim, 8)
        self.keyBlockStride = keyBlockStride ?? keyBlocks
    }

    /// Bytes of the call's block map (`B,H,nq,nk`).
    var mapCount: Int { shape.batch * shape.heads * queryBlocks * keyBlocks }
    var packedKeyBlock: Int { pairs * columnsPad * 2 }          // Int16 per packed key block
    var packedQueryHead: Int { queryBlocks * rowsPad * pairs }   // Int32 per query head
}

