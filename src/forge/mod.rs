//! Forges (GitHub, GitLab) behind one trait (work in progress).
