/// The largest element count any tensor, map or mask of the library may have: about 2^37,
/// far beyond what fits in memory, yet every offset into it still fits an `Int` with room.
let addressableElements = Int(Int32.max) * 64

/// The product of positive `sizes` when it neither overflows nor exceeds
/// `addressableElements`, else nil: the one bound every size check of the library applies
/// before it multiplies or allocates.
func addressableProduct(_ sizes: Int...) -> Int? {
    var product = 1
    for size in sizes {
        let (p, overflow) = product.multipliedReportingOverflow(by: size)
        if overflow { return nil }
        product = p
    }
    return product <= addressableElements ? product : nil
}
