-- Whole-file verification off the upload path (shared/api/src/files.rs, jobs/verify.rs).
-- Each chunk's CRC-64/NVME, computed as it arrives, as 16 hex digits (D1 hands integers to
-- JavaScript as doubles, which cannot hold 64 bits); completion combines them into the file's
-- CRC without reading a byte again.
ALTER TABLE file_chunks ADD COLUMN crc64 TEXT;
-- The file's declared full-object CRC-64/NVME (base64, as S3 writes it), checked at completion.
ALTER TABLE files ADD COLUMN checksum_crc64nvme TEXT;
-- 1 once the declared SHA-256 (`checksum`) has been checked against the stored content: at
-- completion, or by the verify job when the CRC let the file become available first.
ALTER TABLE files ADD COLUMN checksum_verified INTEGER NOT NULL DEFAULT 0;
