-- revision: 0002
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE buffered_messages (
	seq INTEGER NOT NULL, 
	remote VARCHAR(255) NOT NULL, 
	subject TEXT NOT NULL, 
	reply TEXT, 
	headers BLOB, 
	payload BLOB NOT NULL, 
	received_at_us BIGINT NOT NULL, 
	acked_at_us BIGINT, 
	queues TEXT, 
	size INTEGER NOT NULL, node VARCHAR(255) DEFAULT '' NOT NULL, 
	CONSTRAINT pk_buffered_messages PRIMARY KEY (seq)
);
CREATE TABLE store_meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	CONSTRAINT pk_store_meta PRIMARY KEY ("key")
);
CREATE INDEX ix_buffered_messages_node_remote_acked_at_us_seq ON buffered_messages (node, remote, acked_at_us, seq);
CREATE TABLE "buffer_drops" (
	remote VARCHAR(255) NOT NULL, 
	reason VARCHAR(32) NOT NULL, 
	count BIGINT NOT NULL, 
	node VARCHAR(255) DEFAULT '' NOT NULL, 
	CONSTRAINT pk_buffer_drops PRIMARY KEY (node, remote, reason)
);
CREATE TABLE buffer_leases (
	backlog VARCHAR(255) NOT NULL, 
	node VARCHAR(255) NOT NULL, 
	generation BIGINT NOT NULL, 
	holder VARCHAR(255) NOT NULL, 
	instance VARCHAR(32) NOT NULL, 
	epoch BIGINT NOT NULL, 
	renewed_at_us BIGINT NOT NULL, 
	claimed_at_us BIGINT NOT NULL, 
	CONSTRAINT pk_buffer_leases PRIMARY KEY (backlog)
);
