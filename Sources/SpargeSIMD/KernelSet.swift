// The entry points of one kernel set.
//
// Every hot loop of the attention kernels is one of these static functions. They are
// `@inline(never)` on purpose: each compiled kernel set (SpargeSIMD, SpargeSIMDAVX2,
// SpargeSIMDAVX512) must run its own machine code, so no caller may inline a body into code
// compiled for another instruction set. A caller holds one set as a metatype of a protocol
// that all three satisfy, chosen once per call, and pays one indirect call per tile.

/// The tile kernels of this kernel set (see the kernel files for each function).
public enum KernelSet: Sendable {
    /// The name of the instruction-set level this set was compiled for.
    public static var name: String { kernelSetName }
    /// Whether this set was really compiled for its instruction set (see `kernelSetIsSpecialized`).
    public static var isSpecialized: Bool { kernelSetIsSpecialized }
    /// fp32 lanes per vector.
    public static var lanes: Int { vectorLanes }
    /// Score-tile column multiple: key blocks are padded to a multiple of this (two vectors).
    public static var columnTile: Int { 2 * vectorLanes }
}
