"""Where photos come from: files and folders, R2/S3 listings, the manifest, decoding."""
