import SpargeAttn

/// Block maps as text, one character per block in the states of ``BlockState``: `#` selected,
/// `.` skipped, `-` masked (causal or padding); rows are query blocks (top = 0), columns key
/// blocks (left = 0), as in ``BlockMapImage``.
public enum BlockMapText {
    /// The character of a block in `state`.
    public static func character(_ state: BlockState) -> Character {
        switch state {
        case .selected: "#"
        case .skipped: "."
        case .masked: "-"
        }
    }

    /// The legend line printed with the maps.
    public static let legend = "legend: # selected (computed), . skipped, - masked (causal or padding); rows: query blocks, columns: key blocks"

    /// Head `head` of batch entry `batch` of `map`, one line per query block; `isMasked(queryBlock,
    /// keyBlock)` says which blocks are masked (none without it). Throws
    /// ``SpargeError/invalidBlockMap(_:)`` when `batch` or `head` is out of range.
    public static func render(_ map: BlockMap, batch b: Int = 0, head h: Int,
                              isMasked: ((_ queryBlock: Int, _ keyBlock: Int) -> Bool)? = nil) throws -> String {
        try map.checkEntry(batch: b, head: h)
        var s = ""
        for i in 0..<map.queryBlocks {
            for j in 0..<map.keyBlocks {
                let state: BlockState = isMasked?(i, j) == true ? .masked : map[b, h, i, j] ? .selected : .skipped
                s.append(character(state))
            }
            s.append("\n")
        }
        return s
    }
}
