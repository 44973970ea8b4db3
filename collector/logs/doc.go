// Package logs tails the log files named in collectors.logs, writes every
// line to a file rotated by lumberjack, parses its level, counts it, keeps
// the last lines in memory and ships the lines to Loki with its own client
// (shipper: Loki's push types, batching, retries, acknowledgements).
//
// # Files
//
// Each entry's paths are globs, matched again every second (GlobInterval).
// Files are followed by device and inode, not by name: a file renamed by
// logrotate (create mode) is read to its end and kept open until it has
// been quiet for DrainTimeout, while the new file at the path is read from
// its beginning. A file that shrinks below the read offset, or whose first
// bytes change, was truncated (copytruncate) and is read again from its
// start; lines written to it after the last read and before the truncation
// are lost with the truncation, as with any tailer. A line is processed
// when its newline arrives; a line longer than 256 KiB is split.
//
// # Positions
//
// Offsets live in <data_dir>/logs/positions.json, keyed by device and inode
// with the path and a checksum of the file's first bytes (so a reused inode
// is not mistaken for the old file). They are written atomically (temporary
// file, fsync, rename) every second and when Run returns. At start a file
// with a saved position resumes there; a file found with no saved position,
// at start or later, is read from its beginning, so a file that already
// holds a long history is read whole the first time vigil sees it. A saved
// file that no glob matches any more (rotated while vigil was stopped) is
// looked up by inode in its old directory and read to its end.
//
// With Loki, a file's saved position (Offset) moves only when Loki has
// answered 2xx to the push carrying the lines before it, and the positions
// are saved after each such push, before the next is sent: a kill -9 loses
// no line, and repeats at most the one push whose answer was not recorded.
// The position also records how far lines went to the output file
// (Written), so lines sent to Loki again are not written twice. Without
// Loki the position moves once a line is in the output file, and a kill -9
// repeats the lines processed after the last save, at most about a second
// of them. A clean stop neither loses nor repeats a line; see shipper for
// what a Loki outage costs.
//
// A log's level drops less severe lines from every destination (they are
// still counted); its format says where the level is read; its output
// echoes the kept lines on vigil's stdout or stderr.
//
// # Loki streams
//
// Each log is one stream labelled service, environment (the client's
// external labels), app (the entry's labels.app, default "app") and log
// (the entry's name). The level is not a stream label: it would multiply
// the streams by six, and Loki extracts it at query time (| json, | logfmt)
// or at ingestion (Loki 3's discover_log_levels). Lines of one log get
// strictly increasing timestamps (the time they were read), so Loki never
// drops two identical lines as duplicates. The file name is not a label
// either: a log's files are one stream.
//
// # Metrics
//
// log_lines_total{log,level}, vigil_log_bytes_total{log},
// vigil_log_files_tailed{log}, vigil_log_output_errors_total{log},
// vigil_log_loki_handed_lines_total, vigil_log_loki_sent_lines_total{log},
// vigil_log_loki_dropped_lines_total{log}, vigil_log_loki_push_retries_total
// and vigil_log_loki_push_failures_total go on the Registerer given to New.
//
// # Status
//
// Manager.Status reports, per log, the files followed, lines read, output
// file errors and the Loki client's own counts for the operator page.
package logs
