import Foundation
import SpargeAttn
import SpargeFormats

/// A tensor named on the command line: `FILE.npy`, `FILE.safetensors:NAME`, or a safetensors
/// file that holds exactly one tensor. Safetensors files are read once and shared between
/// arguments that name the same file.
struct TensorSource {
    private var files: [String: SafeTensorsFile] = [:]

    /// The tensor `spec` names; `what` (e.g. "--q") is used in messages.
    mutating func read(_ spec: String, for what: String) throws -> Tensor {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        // A whole-argument path wins, so a file name containing ':' still works.
        if fm.fileExists(atPath: spec, isDirectory: &isDirectory), !isDirectory.boolValue {
            try checkInput(spec, option: what)
            if Self.isNumpy(path: spec) { return try NumpyFile.read(path: spec) }
            let file = try safetensors(spec)
            guard file.names.count == 1, let only = file.names.first else {
                throw UsageError("\(what) '\(spec)' holds \(file.names.count) tensors (\(Self.list(file.names))); name one as \(spec):NAME")
            }
            return try file.tensor(only)
        }
        guard let colon = spec.lastIndex(of: ":") else {
            throw UsageError("\(what): file '\(spec)' not found")
        }
        let path = String(spec[..<colon]), name = String(spec[spec.index(after: colon)...])
        guard !path.isEmpty, !name.isEmpty else {
            throw UsageError("\(what) '\(spec)' is not FILE.npy or FILE.safetensors:NAME")
        }
        guard fm.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw UsageError("\(what): file '\(path)' not found")
        }
        try checkInput(path, option: what)
        if Self.isNumpy(path: path) {
            throw UsageError("\(what) '\(spec)': a .npy file holds one tensor; give it without ':\(name)'")
        }
        let file = try safetensors(path)
        guard let t = file[name] else {
            throw UsageError("\(what): '\(path)' has no tensor '\(name)' (it has \(Self.list(file.names)))")
        }
        return t
    }

    private mutating func safetensors(_ path: String) throws -> SafeTensorsFile {
        if let f = files[path] { return f }
        let f = try SafeTensorsFile.read(path: path)
        files[path] = f
        return f
    }

    /// `.npy` by extension, else by the magic bytes `\x93NUMPY`.
    static func isNumpy(path: String) -> Bool {
        if path.lowercased().hasSuffix(".npy") { return true }
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let magic = (try? h.read(upToCount: 6)) ?? Data()
        return magic == Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59])
    }

    private static func list(_ names: [String]) -> String {
        names.count <= 12 ? names.joined(separator: ", ") : names.prefix(12).joined(separator: ", ") + ", ..."
    }
}
