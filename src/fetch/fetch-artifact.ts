// One entry point for backends: http(s) URLs are downloaded (resumable, verified), file: URLs
// (offline installs only; announcements cannot carry them) are copied and verified.
import { fileURLToPath } from 'node:url';
import { downloadArtifact, type DownloadRequest } from './download.js';
import { copyVerified } from './local-copy.js';

export async function fetchArtifact(req: DownloadRequest): Promise<void> {
  if (req.url.startsWith('file:')) {
    await copyVerified({
      srcPath: fileURLToPath(req.url),
      destPath: req.destPath,
      sha256: req.sha256,
      size: req.size,
      ...(req.signal ? { signal: req.signal } : {}),
      ...(req.onProgress ? { onProgress: req.onProgress } : {}),
    });
    return;
  }
  await downloadArtifact(req);
}
