/** The filesystem object store under its old name: it now lives in storage/fs.ts, behind the ObjectStorage interface. */
export { FsObjects as LfsObjects } from './storage/fs.ts';
