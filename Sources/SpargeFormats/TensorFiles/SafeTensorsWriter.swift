import SpargeAttn

/// Builds safetensors bytes deterministically: sorted tensors and metadata, and
/// hand-written JSON so the output does not depend on Foundation's formatting.
enum SafeTensorsWriter {
    static func serialize(_ file: SafeTensorsFile) -> [UInt8] {
        let names = file.names
        var json = "{"
        var first = true
        if !file.metadata.isEmpty {
            json += quoted(SafeTensorsFile.metadataKey) + ":{"
            json += file.metadata.keys.sorted()
                .map { quoted($0) + ":" + quoted(file.metadata[$0]!) }
                .joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        var payloadSize = 0
        for name in names {
            let tensor = file.tensors[name]!
            if !first { json += "," }
            first = false
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            json += quoted(name)
                + ":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + tensor.byteCount)]}"
            offset += tensor.byteCount
            payloadSize += tensor.byteCount
        }
        json += "}"

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

    static func quoted(_ string: String) -> String { JSONText.quoted(string) }
}
