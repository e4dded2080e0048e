export * from './download.js';
export { fetchArtifact } from './fetch-artifact.js';
export { copyVerified } from './local-copy.js';
