import SpargeSIMD
