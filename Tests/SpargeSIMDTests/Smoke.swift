import Testing
@Test func smokeSIMD() { #expect(1 == 1) }
