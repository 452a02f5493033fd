import Foundation

/// The CPU kernel set in use: which levels this build and this processor support, which one
/// runs, and how to choose a lower one.
public enum SpargeCPU {
    /// The levels compiled into this build that the processor can run, lowest first.
    public static var supportedLevels: [CPUKernelLevel] {
        CPUKernelLevel.allCases.filter { kernels(for: $0) != nil }
    }

    /// The best level this build and processor support: what runs unless a lower one is chosen.
    public static var bestLevel: CPUKernelLevel { supportedLevels.last ?? .baseline }

    /// The processor's model name where the system reports it (empty otherwise).
    public static var processorName: String { CPUFeatures.current.model }

    /// The level that a call made now on this thread runs: the one chosen with
    /// ``withLevel(_:_:)``, else the one `SPARGE_ISA` names, else ``bestLevel``.
    ///
    /// - Throws: ``SpargeError/unsupportedKernelLevel(requested:supported:source:)`` when
    ///   `SPARGE_ISA` names a level that this build or processor lacks, or is not a level name.
    public static func currentLevel() throws -> CPUKernelLevel {
        if let forced = Override.level { return forced }
        return try environmentLevel.get()
    }

    /// Runs `body` with every call it makes on this thread (and the workers those calls start)
    /// using `level`'s kernels.
    ///
    /// - Throws: ``SpargeError/unsupportedKernelLevel(requested:supported:source:)`` when this
    ///   build or processor cannot run `level` (it is never attempted: no illegal instruction),
    ///   and whatever `body` throws.
    public static func withLevel<R>(_ level: CPUKernelLevel, _ body: () throws -> R) throws -> R {
        guard kernels(for: level) != nil else {
            throw SpargeError.unsupportedKernelLevel(requested: level.rawValue, supported: supportedLevels.map(\.rawValue),
                                                     source: "SpargeCPU.withLevel")
        }
        return try Override.$level.withValue(level) { try body() }
    }

    /// The kernel set a call runs (after ``currentLevel()`` succeeded, or the best one).
    static var activeKernels: any TileKernels.Type {
        let level = (try? currentLevel()) ?? bestLevel
        return kernels(for: level) ?? kernels(for: .baseline)!
    }

    /// `SPARGE_ISA`, read once per process.
    private static let environmentLevel: Result<CPUKernelLevel, SpargeError> = {
        guard let raw = ProcessInfo.processInfo.environment["SPARGE_ISA"], !raw.isEmpty else { return .success(bestLevel) }
        let name = raw.lowercased()
        guard let level = CPUKernelLevel(rawValue: name), kernels(for: level) != nil else {
            return .failure(.unsupportedKernelLevel(requested: raw, supported: supportedLevels.map(\.rawValue),
                                                    source: "the environment variable SPARGE_ISA"))
        }
        return .success(level)
    }()

    private enum Override {
        @TaskLocal static var level: CPUKernelLevel?
    }
}
