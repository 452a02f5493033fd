import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Checks that keep files safe: outputs that are never an input, a device, a FIFO or a
/// directory; inputs that are regular readable files; atomic writes (temporary file in the
/// same directory, then rename); and system errors turned into messages a person can act on.
///
/// The command-line tool calls ``checkOutput(_:option:inputs:)`` for every output before it
/// computes anything; the library writers call ``writeAtomically(_:to:)``.
public enum FileSafety {
    /// Why a path cannot be used; ``reason`` is a complete sentence fragment for a message.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        /// What is wrong and what to do.
        public let reason: String
        /// True when nothing exists at the path (readers report `fileNotFound`).
        public let notFound: Bool
        public var description: String { reason }
        init(_ reason: String, notFound: Bool = false) { self.reason = reason; self.notFound = notFound }
    }

    // MARK: Inputs

    /// Throws unless `path` is an existing, readable regular file (following links); returns its size.
    @discardableResult
    public static func checkInput(_ path: String) throws(Problem) -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            throw Problem(explain(errno: e), notFound: e == ENOENT)
        }
        guard kind(st.st_mode) == .regular else {
            throw Problem("it is \(kind(st.st_mode).phrase), not a regular file; give the path of a file")
        }
        guard access(path, R_OK) == 0 else { throw Problem(explain(errno: errno)) }
        return Int(st.st_size)
    }

    /// The whole file, after ``checkInput(_:)`` and a size check against `limit` bytes
    /// (`limitName` says which limit, for the message).
    public static func read(_ path: String, limit: Int, limitName: String) throws(Problem) -> Data {
        let size = try checkInput(path)
        guard size <= limit else {
            throw Problem("it is \(size) bytes, more than the \(limit)-byte limit of \(limitName)")
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw Problem(explain(error))
        }
    }

    // MARK: Outputs

    /// Throws unless `path` can be written without harm: a new path or a regular file, not the
    /// same file (device and inode, through any links) as one of `inputs`, in an existing,
    /// writable directory. Touches nothing.
    /// - Parameters:
    ///   - option: how the path was given (e.g. `--output`), for the message;
    ///   - inputs: paths the command reads.
    public static func checkOutput(_ path: String, option: String? = nil, inputs: [String] = []) throws(Problem) {
        let what = option.map { "\($0) " } ?? ""
        guard !path.isEmpty else { throw Problem("the \(what)path is empty") }
        let target = resolved(path)
        var st = stat()
        if stat(target, &st) == 0 {
            let k = kind(st.st_mode)
            if k == .directory {
                throw Problem("it is a directory; give a file name inside it (e.g. \(path)/out\(suffix(path)))")
            }
            guard k == .regular else {
                throw Problem("it is \(k.phrase); \(what)must be a regular file or a new path (writing would replace the \(k.noun))")
            }
            for input in inputs {
                var si = stat()
                if stat(input, &si) == 0, si.st_dev == st.st_dev, si.st_ino == st.st_ino {
                    throw Problem("it is the same file as the input '\(input)'; writing it would destroy the input. Give \(what.isEmpty ? "another path" : "\(what)another path")")
                }
            }
        } else if errno != ENOENT {
            throw Problem(explain(errno: errno))
        }
        let dir = directory(of: target)
        var sd = stat()
        guard stat(dir, &sd) == 0 else {
            throw Problem("its directory '\(dir)' does not exist; create it first or choose another path")
        }
        guard kind(sd.st_mode) == .directory else { throw Problem("'\(dir)' is not a directory") }
        guard access(dir, W_OK | X_OK) == 0 else {
            throw Problem("its directory '\(dir)' is not writable (\(explain(errno: errno))); choose another directory")
        }
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed,
    /// then renamed over `path` (a symbolic link is followed, so the file it names is replaced).
    /// Checks `path` with ``checkOutput(_:option:inputs:)`` first.
    public static func writeAtomically(_ bytes: some Collection<UInt8>, to path: String) throws(Problem) {
        try checkOutput(path)
        let target = resolved(path)
        let dir = directory(of: target)
        let base = (target as NSString).lastPathComponent
        var template = Array("\(dir)/.\(base).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw Problem("cannot create a temporary file in '\(dir)': \(explain(errno: errno))") }
        let temp = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var failure: String? = nil
        let contiguous = Array(bytes)
        contiguous.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = explain(errno: errno)
                    return
                }
                done += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = explain(errno: errno) }
        if failure == nil { _ = fchmod(fd, 0o644) }
        if close(fd) != 0, failure == nil { failure = explain(errno: errno) }
        // A device node or FIFO may have appeared since the check: look again just before renaming.
        if failure == nil {
            do { try checkOutput(path) } catch { failure = error.reason }
        }
        if failure == nil, rename(temp, target) != 0 { failure = explain(errno: errno) }
        if let failure {
            unlink(temp)
            throw Problem(failure)
        }
    }

    // MARK: Messages

    /// A system error number as a message with advice.
    public static func explain(errno e: Int32) -> String {
        switch e {
        case EACCES, EPERM: return "permission denied (check the permissions of the file and its directory, or use another path)"
        case ENOENT: return "no such file or directory (check the path; relative paths start at the current directory)"
        case ENOSPC: return "no space left on the device (free some space or write elsewhere)"
        case EDQUOT: return "the disk quota is exceeded (free some space or write elsewhere)"
        case EROFS: return "the file system is read-only (write somewhere else)"
        case EISDIR: return "it is a directory (give a file)"
        case ENOTDIR: return "a part of the path is not a directory (check the path)"
        case ENAMETOOLONG: return "the path is too long"
        case ELOOP: return "the path has a loop of symbolic links"
        case EXDEV: return "the temporary file and the target are on different file systems"
        case EIO: return "an input/output error of the device (check the disk)"
        default: return String(cString: strerror(e))
        }
    }

    /// A Foundation or POSIX error as a message with advice (never "error 512").
    public static func explain(_ error: any Error) -> String {
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return explain(errno: Int32(ns.code)) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return explain(errno: Int32(underlying.code))
        }
        if ns.domain == NSCocoaErrorDomain {
            switch ns.code {
            case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return explain(errno: ENOENT)
            case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return explain(errno: EACCES)
            case NSFileWriteOutOfSpaceError: return explain(errno: ENOSPC)
            case NSFileWriteVolumeReadOnlyError: return explain(errno: EROFS)
            case NSFileReadTooLargeError: return "the file is too large to read into memory"
            default: break
            }
        }
        return "\(ns.localizedDescription) (\(ns.domain) \(ns.code))"
    }

    // MARK: Helpers

    private enum Kind: Equatable {
        case regular, directory, characterDevice, blockDevice, fifo, socket, link, other
        var phrase: String {
            switch self {
            case .regular: return "a regular file"
            case .directory: return "a directory"
            case .characterDevice: return "a character device"
            case .blockDevice: return "a block device"
            case .fifo: return "a FIFO (named pipe)"
            case .socket: return "a socket"
            case .link: return "a symbolic link"
            case .other: return "not a regular file"
            }
        }
        var noun: String { self == .fifo ? "named pipe" : self == .socket ? "socket" : "device node" }
    }

    private static func kind(_ mode: mode_t) -> Kind {
        switch mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        case S_IFCHR: return .characterDevice
        case S_IFBLK: return .blockDevice
        case S_IFIFO: return .fifo
        case S_IFSOCK: return .socket
        case S_IFLNK: return .link
        default: return .other
        }
    }

    /// The path a symbolic link points to (fully resolved) when it exists; else `path`.
    private static func resolved(_ path: String) -> String {
        var st = stat()
        guard lstat(path, &st) == 0, kind(st.st_mode) == .link, let real = realpath(path, nil) else { return path }
        defer { free(real) }
        return String(cString: real)
    }

    private static func directory(of path: String) -> String {
        let dir = (path as NSString).deletingLastPathComponent
        return dir.isEmpty ? "." : dir
    }

    private static func suffix(_ path: String) -> String {
        let ext = (path as NSString).pathExtension
        return ext.isEmpty ? "" : ".\(ext)"
    }
}
