// Package logs tails the log files named in collectors.logs, writes every
// line to a file rotated by lumberjack, parses its level, counts it, keeps
// the last lines in memory and ships the lines to Loki with loki-client-go.
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
// A clean stop (Run's context cancelled) neither loses nor repeats a line:
// a line's position moves only after the line was handed to Loki, written
// to the output file and kept in the recent lines, and the positions are
// saved after every tailer has stopped. After a crash (kill -9) the lines
// processed after the last save, at most about one second of them, are read
// again: they appear twice in the output file and in Loki. That is the one
// window where lines repeat. For what a Loki outage costs, see shipper.
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
// vigil_log_files_tailed{log}, vigil_log_output_errors_total{log} and
// vigil_log_loki_handed_lines_total go on the Registerer given to New.
// loki-client-go registers its own promtail_* metrics (sent, dropped,
// retries) on Prometheus's default registry when it is imported.
//
// # Status
//
// Manager.Status reports, per log, the files followed, lines read, output
// file errors and Loki push results for the operator page. loki-client-go
// returns no result per push, so those come from its sent and dropped
// counters and the failures it logs; see LogStatus.
package logs
