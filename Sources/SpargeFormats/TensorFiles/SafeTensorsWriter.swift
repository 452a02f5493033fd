import SpargeAttn

/// Builds safetensors bytes deterministically: sorted tensors and metadata, and
/// JSON written by ``JSONValue`` so the output does not depend on Foundation's formatting.
enum SafeTensorsWriter {
    static func serialize(_ file: SafeTensorsFile) -> [UInt8] {
        let names = file.names
        var entries: [(String, JSONValue)] = []
        if !file.metadata.isEmpty {
            entries.append((SafeTensorsFile.metadataKey, .object(file.metadata.keys.sorted().map { ($0, .string(file.metadata[$0]!)) })))
        }
        var offset = 0
        for name in names {
            let tensor = file.tensors[name]!
            entries.append((name, .object([
                ("dtype", .string(tensor.dtype.rawValue)),
                ("shape", .array(tensor.shape.map { .int($0) })),
                ("data_offsets", .array([.int(offset), .int(offset + tensor.byteCount)])),
            ])))
            offset += tensor.byteCount
        }
        let json = JSONValue.object(entries).text
        let payloadSize = offset

        var header = Array(json.utf8)
        let padding = (8 - header.count % 8) % 8
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))

        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count + payloadSize)
        LittleEndianBytes.append(UInt64(header.count), to: &out)
        out.append(contentsOf: header)
        for name in names {
            out.append(contentsOf: file.tensors[name]!.data)
        }
        return out
    }
}
