/**
 * Names git can store in a tree but no checkout may hold. isomorphic-git
 * refuses to parse a whole tree holding one (UnsafeFilepathError), and a
 * stock git checkout refuses or misplaces them, so a registry holding one is
 * reported, with the path, as a validation problem. The `.git` rules mirror
 * git's verify_path (is_ntfs_dotgit, is_hfs_dotgit): case-insensitive,
 * trailing dots and spaces stripped, 8.3 short names, alternate data
 * streams, HFS+ ignorable code points.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const HFS_IGNORABLE = /[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g;

/** Why one path component (a tree entry's name) is unsafe, or null. */
export function unsafeTreeNameReason(name: string): string | null {
  if (name.length === 0) return 'is empty';
  if (CONTROL.test(name)) return 'contains a control character';
  if (name.includes('\\')) return 'contains a backslash (a path separator on Windows)';
  if (name.includes('/')) return 'contains a "/"';
  const hfs = name.replace(HFS_IGNORABLE, '');
  if (hfs === '.' || hfs === '..') return `is ${JSON.stringify(hfs)}, which a checkout resolves outside the directory`;
  const ntfs = hfs.split(':')[0]!.toLowerCase().replace(/[. ]+$/, '');
  if (ntfs === '.git' || /^\.?git~[1-9]$/.test(ntfs)) return 'is ".git" in another spelling (git\'s own directory; a checkout would write into the repository itself)';
  return null;
}
