-- How a carrier names the columns of the CDR file it sends ('number=Called,start=Date,
-- seconds=Dur,cost=Amount'; '' = our own names): `tollgate carrier reconcile` uses it, its
-- --columns flag overrides it field by field.
alter table carriers add column csv_columns text not null default '';
