import Foundation

/// Decodes PNG files with Python's standard library and compares them with raw pixels.
package enum PNGCheck {
    /// Python (standard library only) checks signature, chunk order, every chunk's CRC and the
    /// IHDR fields, inflates the concatenated IDAT data, undoes each row's filter and compares
    /// every pixel with the raw bytes. Prints a JSON report.
    package static let pngChecker = """
        import json, struct, sys, zlib
        def paeth(a, b, c):
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            if pa <= pb and pa <= pc: return a
            return b if pb <= pc else c
        def check(path, raw_path, width, height, channels):
            data = open(path, 'rb').read()
            if data[:8] != b'\\x89PNG\\r\\n\\x1a\\n': return 'bad signature'
            pos, chunks = 8, []
            while pos < len(data):
                if pos + 12 > len(data): return 'truncated chunk'
                n, = struct.unpack('>I', data[pos:pos + 4])
                kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
                crc, = struct.unpack('>I', data[pos + 8 + n:pos + 12 + n])
                if zlib.crc32(kind + body) & 0xffffffff != crc: return 'bad CRC in ' + kind.decode()
                chunks.append((kind, body))
                pos += 12 + n
            kinds = [k for k, _ in chunks]
            if kinds[0] != b'IHDR' or kinds[-1] != b'IEND' or chunks[-1][1] != b'': return 'chunk order %s' % kinds
            idat = [i for i, k in enumerate(kinds) if k == b'IDAT']
            if not idat or idat != list(range(idat[0], idat[-1] + 1)): return 'IDAT chunks not consecutive'
            w, h, depth, ctype, comp, filt, inter = struct.unpack('>IIBBBBB', chunks[0][1])
            if (w, h, depth, ctype, comp, filt, inter) != (width, height, 8, 2 if channels == 3 else 0, 0, 0, 0):
                return 'IHDR %s' % ((w, h, depth, ctype, comp, filt, inter),)
            dec = zlib.decompress(b''.join(chunks[i][1] for i in idat))
            stride = w * channels
            if len(dec) != h * (stride + 1): return 'inflated %d bytes, expected %d' % (len(dec), h * (stride + 1))
            out, prev, used = bytearray(), bytearray(stride), set()
            for y in range(h):
                ft = dec[y * (stride + 1)]
                used.add(ft)
                line = bytearray(dec[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
                for i in range(stride):
                    a = line[i - channels] if i >= channels else 0
                    b = prev[i]
                    c = prev[i - channels] if i >= channels else 0
                    if ft == 0: p = 0
                    elif ft == 1: p = a
                    elif ft == 2: p = b
                    elif ft == 3: p = (a + b) // 2
                    elif ft == 4: p = paeth(a, b, c)
                    else: return 'filter type %d' % ft
                    line[i] = (line[i] + p) & 0xff
                out += line
                prev = line
            if raw_path and bytes(out) != open(raw_path, 'rb').read(): return 'pixels differ'
            return sorted(used)
        results = {}
        for spec in json.load(open(sys.argv[1])):
            r = check(spec['png'], spec.get('raw'), spec['width'], spec['height'], spec['channels'])
            results[spec['png']] = r
        print(json.dumps(results))
        """

    package struct Spec {
        package var png: URL
        package var raw: URL?
        package var width: Int
        package var height: Int
        package var channels: Int
        package init(png: URL, raw: URL?, width: Int, height: Int, channels: Int) {
            (self.png, self.raw, self.width, self.height, self.channels) = (png, raw, width, height, channels)
        }
    }

    /// Runs the checker on `specs`; returns the filter types found per file, or throws the
    /// first file's error.
    @discardableResult
    package static func pythonCheck(_ specs: [Spec], in dir: URL) throws -> [String: [Int]] {
        let list: [[String: Any]] = specs.map {
            var d: [String: Any] = ["png": $0.png.path, "width": $0.width, "height": $0.height, "channels": $0.channels]
            if let raw = $0.raw { d["raw"] = raw.path }
            return d
        }
        let manifest = dir.appendingPathComponent("specs.json")
        try JSONSerialization.data(withJSONObject: list).write(to: manifest)
        let out = try InteropPython.check(pngChecker, [manifest.path])
        guard let results = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any] else {
            throw InteropPython.Failure(description: "python printed: \(out)")
        }
        var filters: [String: [Int]] = [:]
        for spec in specs {
            if let used = InteropPython.ints(results[spec.png.path]) {
                filters[spec.png.lastPathComponent] = used
            } else {
                throw InteropPython.Failure(description: "\(spec.png.lastPathComponent): \(String(describing: results[spec.png.path]))")
            }
        }
        return filters
    }
}
