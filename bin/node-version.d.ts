// Types of node-version.js, which stays plain JavaScript so that an old Node can parse it.
export declare const NEEDED: string;
export declare function nodeVersionProblem(version: string): string | null;
