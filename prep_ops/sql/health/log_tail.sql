-- The last bytes of the server log (binary: the cut may fall inside a multi-byte character).
SELECT pg_read_binary_file(%(path)s, %(offset)s, %(length)s, true) AS tail
